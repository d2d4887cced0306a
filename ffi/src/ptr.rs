//! Checked conversions from C pointers: NULL is `-EFAULT`, a misaligned pointer or an
//! impossible length is `-EINVAL`. What cannot be checked (that the memory exists and
//! is initialised) is the caller's contract, stated on each exported function.

use core::mem::size_of;

use crate::error::{neg, EFAULT, EINVAL};

/// Checks a pointer the library will read or write: NULL is `-EFAULT`, misaligned
/// `-EINVAL`.
pub(crate) fn check_ptr<T>(p: *const T) -> Result<(), i32> {
    if p.is_null() {
        return Err(neg(EFAULT));
    }
    if !p.is_aligned() {
        return Err(neg(EINVAL));
    }
    Ok(())
}

/// A shared reference from a C pointer.
///
/// # Safety
/// `p` is NULL or points to an initialised `T` that is not mutated for `'a`.
pub(crate) unsafe fn ref_from<'a, T>(p: *const T) -> Result<&'a T, i32> {
    check_ptr(p)?;
    // SAFETY: non-null and aligned (checked); valid and initialised by the contract.
    Ok(unsafe { &*p })
}

fn check_len<T>(len: usize) -> Result<(), i32> {
    match len.checked_mul(size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(neg(EINVAL)),
    }
}

/// A shared slice from a C pointer and length; a zero length gives an empty slice
/// whatever the pointer.
///
/// # Safety
/// If `len > 0`, `p` is NULL or points to `len` initialised `T`s not mutated for `'a`.
pub(crate) unsafe fn slice_from<'a, T>(p: *const T, len: usize) -> Result<&'a [T], i32> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(neg(EFAULT));
    }
    if !p.is_aligned() {
        return Err(neg(EINVAL));
    }
    check_len::<T>(len)?;
    // SAFETY: non-null, aligned, length within isize::MAX bytes (checked); `len` valid
    // initialised elements by the contract.
    Ok(unsafe { core::slice::from_raw_parts(p, len) })
}

/// A mutable slice from a C pointer and length (`len > 0`).
///
/// # Safety
/// `p` is NULL or points to `len` initialised `T`s that nothing else accesses for `'a`.
pub(crate) unsafe fn mut_slice<'a, T>(p: *mut T, len: usize) -> Result<&'a mut [T], i32> {
    if p.is_null() {
        return Err(neg(EFAULT));
    }
    if !p.is_aligned() || len == 0 {
        return Err(neg(EINVAL));
    }
    check_len::<T>(len)?;
    // SAFETY: non-null, aligned, length within isize::MAX bytes (checked); exclusive
    // access to `len` initialised elements by the contract.
    Ok(unsafe { core::slice::from_raw_parts_mut(p, len) })
}

/// Whether `p` is non-null, aligned to `align` and `size` bytes fit behind it as the
/// caller said; the error code otherwise.
pub(crate) fn check_block(p: *const u8, have: usize, size: usize, align: usize) -> Result<(), i32> {
    if p.is_null() {
        return Err(neg(EFAULT));
    }
    if (p as usize) % align != 0 || have < size {
        return Err(neg(EINVAL));
    }
    Ok(())
}

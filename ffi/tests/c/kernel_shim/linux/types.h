/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * A minimal stand-in for the kernel's <linux/types.h>: just the types swapdio.h uses,
 * defined the way include/linux/types.h and the asm-generic headers define them on
 * x86-64. Used to prove that kernel code (-ffreestanding -nostdinc) can include swapdio.h.
 */
#ifndef _LINUX_TYPES_H
#define _LINUX_TYPES_H

typedef signed char s8;
typedef unsigned char u8;
typedef signed short s16;
typedef unsigned short u16;
typedef signed int s32;
typedef unsigned int u32;
typedef signed long long s64;
typedef unsigned long long u64;

typedef u8 uint8_t;
typedef u16 uint16_t;
typedef u32 uint32_t;
typedef u64 uint64_t;
typedef s8 int8_t;
typedef s16 int16_t;
typedef s32 int32_t;
typedef s64 int64_t;

typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned long uintptr_t;
typedef _Bool bool;

#define NULL ((void *)0)

#endif /* _LINUX_TYPES_H */

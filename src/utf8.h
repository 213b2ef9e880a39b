/*
 * utf8.h: text that reaches Ollama goes in JSON, which must be UTF-8.
 */
#ifndef OLLAMAX_UTF8_H
#define OLLAMAX_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The offset of the first byte of s (len bytes) that is not valid UTF-8,
 * or -1 if all of it is. */
long utf8_invalid_at(const char *s, size_t len);
/* The character at s (len > 0 bytes) and its length in *size, as Go's
 * utf8.DecodeRune reads it: a byte that starts no valid character is
 * U+FFFD, one byte long. */
uint32_t utf8_decode(const char *s, size_t len, size_t *size);
/* len, less a character cut short at its end (s cut to a buffer). */
size_t utf8_whole_len(const char *s, size_t len);
/* A copy of s (len bytes, NUL-terminated, *out_len long) with each byte
 * that is not valid UTF-8 replaced by U+FFFD, as Go's decoder takes it. */
char *utf8_repaired(const char *s, size_t len, size_t *out_len);
/*
 * text as a terminal may be given it, in shown (size bytes, cut there):
 * control bytes as '?', as an escape sequence would act on the terminal
 * and a newline break a row, and so every byte past ASCII of text that is
 * not UTF-8; a character cut short at its end as one '?'. shown may be
 * text itself. Returns shown.
 */
const char *utf8_shown(const char *text, char *shown, size_t size);

#endif

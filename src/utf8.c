#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/*
 * The byte of s (len bytes) where UTF-8 stops being valid, or -1: no
 * overlong forms, no surrogates, nothing past U+10FFFF, as JSON and Ollama
 * require of the text it reaches.
 */
long
utf8_invalid_at(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned c = u[i];
		size_t n;
		unsigned min, cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1, min = 0x80, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 2, min = 0x800, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3, min = 0x10000, cp = c & 0x07;
		else
			return (long)i;
		if (len - i <= n)
			return (long)i;
		for (size_t k = 1; k <= n; k++) {
			if ((u[i + k] & 0xC0) != 0x80)
				return (long)i;
			cp = cp << 6 | (u[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return (long)i;
		i += n + 1;
	}
	return -1;
}

char *
utf8_repaired(const char *s, size_t len, size_t *out_len)
{
	/* Each bad byte grows to the 3 of U+FFFD. */
	char *out = malloc(len * 3 + 1);
	size_t n = 0, i = 0;
	long bad;

	if (out == NULL)
		abort();
	while (i < len && (bad = utf8_invalid_at(s + i, len - i)) >= 0) {
		memcpy(out + n, s + i, (size_t)bad);
		n += (size_t)bad;
		memcpy(out + n, "\xef\xbf\xbd", 3);
		n += 3;
		i += (size_t)bad + 1;
	}
	memcpy(out + n, s + i, len - i);
	n += len - i;
	out[n] = '\0';
	*out_len = n;
	return out;
}

size_t
utf8_whole_len(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	/* A lead byte within the last 3, followed only by continuation
	 * bytes, and fewer of them than it announces. */
	for (size_t back = 1; back <= 3 && back <= len; back++) {
		unsigned c = u[len - back];
		size_t need;

		if ((c & 0xC0) == 0x80)
			continue;
		/* What is no lead at all is a bad byte, not a cut. */
		need = c >= 0xF5 ? 1
		    : c >= 0xF0  ? 4
		    : c >= 0xE0  ? 3
		    : c >= 0xC2  ? 2
		                 : 1;
		return back < need ? len - back : len;
	}
	return len;
}

const char *
utf8_shown(const char *text, char *shown, size_t size)
{
	/* A character cut short at the end (text cut to a buffer before it
	 * came) is judged apart, so that the characters before it are kept;
	 * it shows as one '?', not as nothing: a name ending in a byte of
	 * another encoding would show as a shorter name, perhaps another's. */
	size_t all = strlen(text), len = utf8_whole_len(text, all), in = 0,
	       out = 0;
	int bad_utf8 = utf8_invalid_at(text, len) >= 0;

	while (in < all && out + 1 < size) {
		unsigned char c = (unsigned char)text[in];

		if (in == len) {
			shown[out++] = '?';
			break;
		}
		/* The C1 controls, U+0080 to U+009F, written in UTF-8: a
		 * terminal in UTF-8 mode may act on them, U+009B as on
		 * ESC [. */
		if (!bad_utf8 && c == 0xc2 &&
		    (unsigned char)text[in + 1] <= 0x9f) {
			shown[out++] = '?';
			in += 2;
			continue;
		}
		shown[out++] = c < 0x20 || c == 0x7f || (c >= 0x80 && bad_utf8)
		    ? '?'
		    : text[in];
		in++;
	}
	/* A character cut at the buffer's end would show as another. */
	if (!bad_utf8)
		out = utf8_whole_len(shown, out);
	shown[out] = '\0';
	return shown;
}

uint32_t
utf8_decode(const char *text, size_t n, size_t *size)
{
	const unsigned char *s = (const unsigned char *)text;
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need;
	uint32_t r;

	*size = 1;
	if (c < 0x80)
		return c;
	if (c >= 0xc2 && c <= 0xdf)
		need = 1, r = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		need = 2, r = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 3, r = c & 0x07;
	else
		return 0xfffd;
	/* Overlong forms, surrogates and past U+10FFFF are no characters. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n <= need || s[1] < lo || s[1] > hi)
		return 0xfffd;
	for (size_t i = 1; i <= need; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0xfffd;
		r = r << 6 | (s[i] & 0x3f);
	}
	*size = need + 1;
	return r;
}

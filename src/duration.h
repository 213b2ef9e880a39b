/* duration.h: Go-style durations, parsed into nanoseconds. */
#ifndef OLLAMAX_DURATION_H
#define OLLAMAX_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* A negative duration means "never expires", as Ollama stores it. */
#define DURATION_FOREVER INT64_MAX
#define NS_PER_SEC 1000000000LL

/*
 * Parses a Go duration ("10m", "1h30m", "-1m", "0", "1.5s") into ns.
 * Negative values become DURATION_FOREVER. Returns 0, or -1 with Go's
 * error message in err ("time: missing unit in duration \"300\"").
 */
int duration_parse(const char *s, int64_t *out_ns, char *err, size_t errlen);
/* ms in its largest whole unit of Go's (h, m, s, ms), as a bound is
 * written: "168h", not "604800000ms". Returns out. */
const char *duration_shown_ms(int64_t ms, char *out, size_t len);

#endif

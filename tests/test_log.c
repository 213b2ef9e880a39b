/*
 * The log as the fleet's processes share it: every line whole where it
 * lands, a long message in parts on a pipe, each part ending between
 * characters, nothing lost.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "utf8.h"

/* A message of `chars` copies of a two-byte character, so that a part cut
 * inside one shows as text that is not UTF-8. */
static char *
long_message(const char *ch, size_t chars)
{
	size_t w = strlen(ch);
	char *msg = malloc(chars * w + 1);

	cr_assert_not_null(msg);
	for (size_t i = 0; i < chars; i++)
		memcpy(msg + i * w, ch, w);
	msg[chars * w] = '\0';
	return msg;
}

/* In a child: log `count` messages of `chars` copies of ch to fd. */
static pid_t
logger(int fd, const char *name, const char *ch, size_t chars, int count)
{
	pid_t pid = fork();

	cr_assert_neq(pid, -1);
	if (pid == 0) {
		char *msg = long_message(ch, chars);

		dup2(fd, STDERR_FILENO);
		log_init(name, 0);
		for (int i = 0; i < count; i++)
			log_info("%s", msg);
		_exit(0);
	}
	return pid;
}

static char *
read_all(int fd, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	ssize_t got;

	cr_assert_not_null(buf);
	while ((got = read(fd, buf + n, cap - n - 1)) > 0) {
		n += (size_t)got;
		if (cap - n < 4096) {
			cap *= 2;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/*
 * Checks each line of the log: whole (a stamp, a known name, one kind of
 * character), within PIPE_BUF, its text UTF-8; and counts each name's
 * text in bytes.
 */
static void
check_lines(char *log, const char *const names[2], const char *const chars[2],
    size_t text[2], int *lines)
{
	char *save = NULL;

	*lines = 0;
	for (char *line = strtok_r(log, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		int who = -1;
		char *body;

		(*lines)++;
		cr_assert_leq(strlen(line) + 1, PIPE_BUF, "a line of %zu bytes",
		    strlen(line) + 1);
		/* HH:MM:SS.mmm NAME: info: [(continued) ]TEXT */
		cr_assert_eq(line[2], ':');
		cr_assert_eq(line[12], ' ', "no stamp: %.40s", line);
		for (int i = 0; i < 2; i++)
			if (strncmp(line + 13, names[i], strlen(names[i])) == 0)
				who = i;
		cr_assert_neq(who, -1, "a line of nobody's: %.60s", line);
		body = line + 13 + strlen(names[who]);
		cr_assert_eq(strncmp(body, ": info: ", 8), 0, "%.60s", line);
		body += 8;
		if (strncmp(body, "(continued) ", 12) == 0)
			body += 12;
		cr_assert_eq(utf8_invalid_at(body, strlen(body)), -1,
		    "a part cut inside a character: %.60s", line);
		for (size_t i = 0; body[i] != '\0'; i += strlen(chars[who]))
			cr_assert_eq(strncmp(body + i, chars[who],
			                 strlen(chars[who])),
			    0, "%s's line mixed with another's at %zu",
			    names[who], i);
		text[who] += strlen(body);
	}
}

Test(log, long_messages_of_two_processes_on_one_pipe_do_not_mix)
{
	static const char *const names[2] = {"left", "right"};
	static const char *const chars[2] = {"\xc3\xa9", "\xc3\xb6"};
	enum { CHARS = 10000, COUNT = 40 };
	size_t text[2] = {0, 0}, len;
	int fds[2], lines, status;
	pid_t pids[2];
	char *log;

	cr_assert_eq(pipe(fds), 0);
	for (int i = 0; i < 2; i++)
		pids[i] = logger(fds[1], names[i], chars[i], CHARS, COUNT);
	close(fds[1]);
	log = read_all(fds[0], &len);
	close(fds[0]);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	check_lines(log, names, chars, text, &lines);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(text[i], (size_t)CHARS * 2 * COUNT,
		    "%s wrote %zu bytes of text, not %d", names[i], text[i],
		    CHARS * 2 * COUNT);
	/* Each message took several parts. */
	cr_assert_gt(lines, 2 * COUNT * 4);
	free(log);
}

Test(log, a_long_message_to_a_file_is_one_line)
{
	char path[] = "/tmp/ollamax-test-log-XXXXXX";
	int fd = mkstemp(path), lines = 0, status;
	size_t len;
	pid_t pid;
	char *log;

	cr_assert_neq(fd, -1);
	unlink(path);
	pid = logger(fd, "solo", "\xc3\xa9", 10000, 3);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	log = read_all(fd, &len);
	close(fd);
	cr_assert_eq(len, 3 * (strlen("HH:MM:SS.mmm solo: info: ") + 20000 + 1));
	for (size_t i = 0; i < len; i++)
		lines += log[i] == '\n';
	cr_assert_eq(lines, 3);
	cr_assert_null(strstr(log, "(continued)"));
	free(log);
}

Test(log, a_text_of_many_lines_forges_no_line_and_moves_no_cursor)
{
	char path[] = "/tmp/ollamax-test-log-XXXXXX";
	int fd = mkstemp(path), status;
	size_t len;
	pid_t pid;
	char *log, *body;

	cr_assert_neq(fd, -1);
	unlink(path);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		dup2(fd, STDERR_FILENO);
		log_init("teller", 0);
		log_warnx("a: it was:\n%s",
		    "one\n12:00:00.000 teller: info: forged\n\033[2Jtwo\r"
		    "\xc2\x9b"
		    "3J caf\xc3\xa9\tend\n");
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	log = read_all(fd, &len);
	close(fd);
	body = strstr(log, ": warning: ");
	cr_assert_not_null(body, "%s", log);
	cr_assert_str_eq(body,
	    ": warning: a: it was:\n\tone\n\t12:00:00.000 teller: info: "
	    "forged\n\t?[2Jtwo??3J caf\xc3\xa9\tend\n\t\n");
	free(log);
}

Test(log, a_long_program_name_does_not_take_a_line_past_pipe_buf)
{
	char name[301], *log, *save = NULL;
	size_t len, text = 0;
	int fds[2], status;
	pid_t pid;

	memset(name, 'n', 300);
	name[300] = '\0';
	cr_assert_eq(pipe(fds), 0);
	pid = logger(fds[1], name, "x", 10000, 1);
	close(fds[1]);
	log = read_all(fds[0], &len);
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	for (char *line = strtok_r(log, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *body = strstr(line, ": info: ");

		cr_assert_leq(strlen(line) + 1, PIPE_BUF);
		cr_assert_not_null(body);
		body += 8;
		if (strncmp(body, "(continued) ", 12) == 0)
			body += 12;
		text += strspn(body, "x");
	}
	cr_assert_eq(text, 10000);
	free(log);
}

/* What a terminal is given of another's text: nothing that acts on it. */
Test(log, text_for_a_terminal_shows_control_bytes_as_question_marks)
{
	char shown[16];

	cr_assert_str_eq(
	    utf8_shown("a\033[2Jb\n", shown, sizeof(shown)), "a?[2Jb?");
	cr_assert_str_eq(utf8_shown("caf\xc3\xa9\x7f", shown, sizeof(shown)),
	    "caf\xc3\xa9?", "UTF-8 text keeps its characters");
	cr_assert_str_eq(utf8_shown("caf\xe9 \xc3\xa9", shown, sizeof(shown)),
	    "caf? ??", "in text that is not UTF-8, every byte past ASCII");
	cr_assert_str_eq(utf8_shown("0123456789abcdefgh", shown, sizeof(shown)),
	    "0123456789abcde", "cut at the buffer");
	cr_assert_str_eq(utf8_shown("a\xc2\x9b"
	                            "2Jb\xc2\x85",
	                     shown, sizeof(shown)),
	    "a?2Jb?", "C1 controls in UTF-8 too");
	cr_assert_str_eq(utf8_shown("\xc2\xa0\xc2\xbf", shown, sizeof(shown)),
	    "\xc2\xa0\xc2\xbf", "the characters after them kept");
	cr_assert_str_eq(
	    utf8_shown("0123456789abcd\xc3\xa9", shown, sizeof(shown)),
	    "0123456789abcd", "a character cut at the buffer left out");
	cr_assert_str_eq(utf8_shown("caf\xc3\xa9 na\xc3", shown, sizeof(shown)),
	    "caf\xc3\xa9 na?", "and one cut before it came, as one '?'");
	cr_assert_str_eq(utf8_shown("/tmp/caf\xe9", shown, sizeof(shown)),
	    "/tmp/caf?", "a last byte of another encoding is not left out");
	strcpy(shown,
	    "a\tb\xc2\x9b"
	    "c");
	cr_assert_str_eq(
	    utf8_shown(shown, shown, sizeof(shown)), "a?b?c", "in place");
}

/*
 * no_read: a peer that asks and never reads its answers (not a test by
 * itself; tests/integration/frames.sh runs it). It connects to a server's
 * ipc socket as an nng REQ peer, speaking the SP wire format itself, sends
 * COUNT status requests one after another (fewer if the server stops
 * reading them), reads nothing, and holds the connection for HOLD seconds
 * or until the server closes it. It prints "closed by the server" or
 * "held".
 * Usage: no_read SOCKET_PATH COUNT HOLD
 */
#include "autoconf.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "msg.h"

/* Writes it all, or gives up once the server has read nothing for a
 * second: it has stopped reading, as its contexts are all taken. */
static int
write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		struct pollfd out = {.fd = fd, .events = POLLOUT};
		ssize_t n;

		if (poll(&out, 1, 1000) != 1)
			return -1;
		n = write(fd, p, len);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Whether the server closed the connection, reading nothing of it. */
static int
closed_by_peer(int fd, int hold_s)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	return poll(&p, 1, hold_s * 1000) > 0 &&
	    (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

int
main(int argc, char **argv)
{
	/* The SP handshake of a REQ0 peer (protocol 0x30). */
	static const unsigned char hello[8] = {0, 'S', 'P', 0, 0x00, 0x30};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct msg_ctl ctl = {.json = 1};
	unsigned char theirs[8];
	struct msg_writer w;
	const char *body;
	size_t len;
	int fd, count;

	if (argc != 4) {
		fprintf(stderr, "usage: no_read SOCKET_PATH COUNT HOLD\n");
		return 2;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	count = atoi(argv[2]);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    write_all(fd, hello, sizeof(hello)) != 0 ||
	    read(fd, theirs, sizeof(theirs)) != (ssize_t)sizeof(theirs)) {
		perror("no_read: connect");
		return 1;
	}
	snprintf(ctl.verb, sizeof(ctl.verb), "status");
	msg_ctl_encode(&w, &ctl);
	body = msg_data(&w, &len);
	for (int i = 0; i < count; i++) {
		/* A message: 1, its length in 8 bytes, then the request's id
		 * (its high bit set) and the body. */
		unsigned char head[13];
		uint64_t size = len + 4;
		uint32_t id = 0x80000000u | (uint32_t)(i + 1);

		head[0] = 1;
		for (int k = 0; k < 8; k++)
			head[1 + k] = (unsigned char)(size >> (56 - 8 * k));
		for (int k = 0; k < 4; k++)
			head[9 + k] = (unsigned char)(id >> (24 - 8 * k));
		if (write_all(fd, head, sizeof(head)) != 0 ||
		    write_all(fd, body, len) != 0)
			break;
	}
	msg_writer_free(&w);
	puts(closed_by_peer(fd, atoi(argv[3])) ? "closed by the server"
	                                       : "held");
	close(fd);
	return 0;
}

/*
 * resolve: a static musl getaddrinfo client for the e2e suite (images/musl-client/build.sh).
 * glibc pods and musl pods (Alpine) read the same /etc/resolv.conf differently (musl stops a search
 * list at SERVFAIL, queries A and AAAA in parallel, ignores most options), so the DNS checks run from
 * both. Statically linked against musl, this asks musl's own stub resolver, with no NSS in between.
 *
 *   resolve NAME [NAME...]   one line per name: "NAME ok ADDR[,ADDR...]" (unique, sorted) or
 *                            "NAME fail <gai_strerror> (<EAI code>)"; exit 0 if every name resolved
 *   resolve sleep            wait for SIGTERM (the pod the tests `kubectl exec` into), then exit 0
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* musl returns at most 48 addresses (MAXADDRS); more are ignored rather than overflowing. */
#define MAX_ADDRS 64

static const char *eai_name(int rc)
{
	switch (rc) {
	case EAI_BADFLAGS: return "EAI_BADFLAGS";
	case EAI_NONAME: return "EAI_NONAME";
	case EAI_AGAIN: return "EAI_AGAIN";
	case EAI_FAIL: return "EAI_FAIL";
	case EAI_NODATA: return "EAI_NODATA";
	case EAI_FAMILY: return "EAI_FAMILY";
	case EAI_SOCKTYPE: return "EAI_SOCKTYPE";
	case EAI_SERVICE: return "EAI_SERVICE";
	case EAI_MEMORY: return "EAI_MEMORY";
	case EAI_SYSTEM: return "EAI_SYSTEM";
	case EAI_OVERFLOW: return "EAI_OVERFLOW";
	}
	static char buf[16];
	snprintf(buf, sizeof buf, "%d", rc);
	return buf;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int resolve(const char *name)
{
	/* AF_UNSPEC: A and AAAA, as an application asks. SOCK_STREAM: one entry per address (not one
	 * per socket type). No AI_ADDRCONFIG: the answer should not depend on the pod's interfaces. */
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	int rc = getaddrinfo(name, NULL, &hints, &res);
	if (rc != 0) {
		printf("%s fail %s (%s)\n", name, gai_strerror(rc), eai_name(rc));
		return 1;
	}
	static char addrs[MAX_ADDRS][INET6_ADDRSTRLEN];
	size_t n = 0;
	for (ai = res; ai && n < MAX_ADDRS; ai = ai->ai_next) {
		const void *a = ai->ai_family == AF_INET6
			? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
			: (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		if (inet_ntop(ai->ai_family, a, addrs[n], sizeof addrs[n]))
			n++;
	}
	freeaddrinfo(res);
	/* musl orders addresses by RFC 6724 (which probes routes): sorted text is stable across pods. */
	qsort(addrs, n, sizeof addrs[0], cmp);
	printf("%s ok ", name);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(addrs[i], addrs[i - 1]) != 0)
			printf("%s%s", i ? "," : "", addrs[i]);
	printf("\n");
	return 0;
}

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: resolve NAME [NAME...] | resolve sleep\n");
		return 2;
	}
	if (argc == 2 && strcmp(argv[1], "sleep") == 0) {
		/* As PID 1 the kernel drops signals that have no handler: without one, SIGTERM would be
		 * ignored and every pod deletion would wait out its grace period for the SIGKILL. */
		signal(SIGTERM, on_term);
		signal(SIGINT, on_term);
		for (;;)
			pause();
	}
	int failed = 0;
	for (int i = 1; i < argc; i++)
		failed |= resolve(argv[i]);
	return failed;
}

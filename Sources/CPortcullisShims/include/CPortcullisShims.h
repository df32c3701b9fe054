// Linux system headers that Glibc's Swift module does not export, and OpenSSL
// function-like macros that Swift cannot import, wrapped as plain functions.
#ifndef PORTCULLIS_SHIMS_H
#define PORTCULLIS_SHIMS_H

#include <stdint.h>
#include <stddef.h>
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <zstd.h>

/// epoll_event is packed on x86_64; these keep Swift away from the packed layout.
int pc_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// Fills parallel arrays; returns the count or -1 with errno set.
int pc_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int maxevents, int timeout_ms);

/// Blocks the given signals for the calling thread and returns a non-blocking signalfd for them.
int pc_signalfd_for(const int *signals, int count);

/// accept4 and pthread_setname_np need _GNU_SOURCE, which Swift's Glibc module does not set.
int pc_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int pc_set_thread_name(const char *name);
/// fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): frees a consumed range of a file
/// pg_dump is still writing (backup directory format). 0, or -1 with errno set.
int pc_punch_hole(int fd, long long offset, long long length);
/* Initialise OpenSSL without its atexit cleanup: background threads (libpq service
   connections) may still be inside libcrypto when the process exits. Call first in main. */
int pc_openssl_init_without_atexit(void);
/* SO_PEERCRED of a Unix-domain socket, then the user's name (getpwuid_r), for `peer`
   authentication. Returns 0 and writes a NUL-terminated name, or -1 with errno set. */
int pc_peer_user_name(int fd, char *name, size_t capacity);

/// Socket address helpers: fills `storage`, returns its length or -1 when `host` is not a literal.
int pc_sockaddr_make(const char *host, uint16_t port, struct sockaddr_storage *storage, socklen_t *len);
int pc_sockaddr_un_make(const char *path, struct sockaddr_storage *storage, socklen_t *len);
/// Renders the numeric host and port of an address ("127.0.0.1", "::1", or "[local]" for AF_UNIX).
void pc_sockaddr_describe(const struct sockaddr_storage *storage, char *host, size_t hostlen, uint16_t *port, int *family);

// OpenSSL macros.
long pc_ssl_ctx_set_min_proto(SSL_CTX *ctx, int version);
long pc_ssl_ctx_set_max_proto(SSL_CTX *ctx, int version);
long pc_ssl_set_sni(SSL *ssl, const char *name);
long pc_ssl_ctx_set_modes(SSL_CTX *ctx);
/// Keeps a session's record buffers between records (1), or frees them when idle and from now on
/// after each record (0: SSL_MODE_RELEASE_BUFFERS).
void pc_ssl_keep_buffers(SSL *ssl, int keep);
/// Read whole socket buffers, not a record header and then its body: half the read syscalls.
/// TLS 1.3 KeyUpdate messages received on `ssl` so far (counted by a message callback that
/// pc_ssl_ctx_set_modes installs).
uint64_t pc_ssl_key_updates_received(const SSL *ssl);
void pc_ssl_ctx_set_read_ahead(SSL_CTX *ctx);
/// Largest plaintext per TLS record this side sends.
long pc_ssl_ctx_set_max_send_fragment(SSL_CTX *ctx, long size);
long pc_ssl_ctx_set_session_id_context(SSL_CTX *ctx);
long pc_ssl_ctx_disable_session_cache(SSL_CTX *ctx);
/// SSL_OP_* are macros of casted constants: no compression, no renegotiation, no tickets, (server) own cipher order.
void pc_ssl_ctx_set_hardening_options(SSL_CTX *ctx, int server);
/// Verifies the peer against an IP literal (libpq verify-full with hostaddr-style hosts). 1 on success.
int pc_ssl_set_expected_ip(SSL *ssl, const char *ip);
/// Server side: select ALPN "postgresql" when offered; refuse a handshake that offers only others.
void pc_ssl_ctx_use_postgresql_alpn(SSL_CTX *ctx);
/// Marks a server-side session as direct TLS: its ClientHello must carry ALPN.
int pc_ssl_mark_direct(SSL *ssl);
/// 1 when ALPN "postgresql" was negotiated.
int pc_ssl_alpn_is_postgresql(const SSL *ssl);

/// Subject of a certificate: CN into `cn`, RFC 2253 DN into `dn` (as PostgreSQL's clientname=DN). 0 on success.
int pc_x509_subject(X509 *cert, char *cn, size_t cnlen, char *dn, size_t dnlen);
/// tls-server-end-point channel binding (RFC 5929): hash of the server certificate.
/// `peer` = 1 for the peer's certificate (client side), 0 for our own (server side).
int pc_tls_server_end_point(SSL *ssl, int peer, unsigned char *out, unsigned int *outlen);

/// PBKDF2-HMAC-SHA256 with a 32-byte output (SCRAM's Hi(), RFC 5802 2.2), run in steps so that
/// a caller can stop between them: start, step as often as needed, then finish or free.
typedef struct pc_pbkdf2 pc_pbkdf2;
/// Keys the HMAC with `password` and runs the first iteration; NULL if OpenSSL fails.
pc_pbkdf2 *pc_pbkdf2_sha256_start(const unsigned char *password, size_t passwordlen,
                                  const unsigned char *salt, size_t saltlen);
/// Runs `count` more iterations. 1 on success.
int pc_pbkdf2_sha256_step(pc_pbkdf2 *state, long count);
/// Copies the 32-byte result out; the state stays valid until pc_pbkdf2_sha256_free.
void pc_pbkdf2_sha256_result(const pc_pbkdf2 *state, unsigned char *out);
void pc_pbkdf2_sha256_free(pc_pbkdf2 *state);

/// HKDF-SHA256 (RFC 5869) through OpenSSL's EVP_PKEY HKDF. 1 on success.
int pc_hkdf_sha256(const unsigned char *key, size_t keylen, const unsigned char *salt, size_t saltlen,
                   const unsigned char *info, size_t infolen, unsigned char *out, size_t outlen);
/// AES-256-GCM with a 12-byte nonce and a 16-byte tag. Seal writes ciphertext (same length as
/// the plaintext) and tag; open returns 1 only when the tag verifies.
int pc_aes256gcm_seal(const unsigned char *key, const unsigned char *nonce, const unsigned char *aad, size_t aadlen,
                      const unsigned char *plaintext, size_t len, unsigned char *ciphertext, unsigned char *tag);
int pc_aes256gcm_open(const unsigned char *key, const unsigned char *nonce, const unsigned char *aad, size_t aadlen,
                      const unsigned char *ciphertext, size_t len, const unsigned char *tag, unsigned char *plaintext);

/// Pops the OpenSSL error queue into `buf` (first error's reason string); returns the packed code.
unsigned long pc_ssl_error_string(char *buf, size_t len);

/// glibc's malloc_trim(0): returns free memory of every arena to the system.
int pc_malloc_trim(void);
/// Gives the calling thread's stack pages below the current frame (less `keep` bytes) back to
/// the system (madvise MADV_DONTNEED): a classifier thread that went 60 MB deep once keeps
/// nothing of it.
void pc_release_unused_stack(size_t keep);

#endif

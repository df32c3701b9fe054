#define _GNU_SOURCE
#include "CPortcullisShims.h"
#include <string.h>
#include <sys/mman.h>
#include <stdint.h>
#include <malloc.h>
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <pwd.h>
#include <errno.h>
#include <sys/socket.h>

int pc_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) { return accept4(fd, addr, len, flags); }
int pc_set_thread_name(const char *name) { return pthread_setname_np(pthread_self(), name); }

int pc_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int pc_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int maxevents, int timeout_ms) {
    struct epoll_event evs[256];
    if (maxevents > 256) maxevents = 256;
    int n = epoll_wait(epfd, evs, maxevents, timeout_ms);
    for (int i = 0; i < n; i++) { datas[i] = evs[i].data.u64; events[i] = evs[i].events; }
    return n;
}

int pc_signalfd_for(const int *signals, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int pc_sockaddr_make(const char *host, uint16_t port, struct sockaddr_storage *storage, socklen_t *len) {
    memset(storage, 0, sizeof *storage);
    struct sockaddr_in *v4 = (struct sockaddr_in *)storage;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)storage;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET; v4->sin_port = htons(port); *len = sizeof *v4; return (int)*len;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6; v6->sin6_port = htons(port); *len = sizeof *v6; return (int)*len;
    }
    return -1;
}

int pc_sockaddr_un_make(const char *path, struct sockaddr_storage *storage, socklen_t *len) {
    memset(storage, 0, sizeof *storage);
    struct sockaddr_un *un = (struct sockaddr_un *)storage;
    if (strlen(path) >= sizeof un->sun_path) return -1;
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, path);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
    return (int)*len;
}

void pc_sockaddr_describe(const struct sockaddr_storage *storage, char *host, size_t hostlen, uint16_t *port, int *family) {
    *family = storage->ss_family;
    *port = 0;
    if (storage->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)storage;
        inet_ntop(AF_INET, &v4->sin_addr, host, (socklen_t)hostlen);
        *port = ntohs(v4->sin_port);
    } else if (storage->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)storage;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, (socklen_t)hostlen);
        *port = ntohs(v6->sin6_port);
    } else {
        snprintf(host, hostlen, "[local]");
    }
}

long pc_ssl_ctx_set_min_proto(SSL_CTX *ctx, int version) { return SSL_CTX_set_min_proto_version(ctx, version); }
long pc_ssl_ctx_set_max_proto(SSL_CTX *ctx, int version) { return SSL_CTX_set_max_proto_version(ctx, version); }
long pc_ssl_set_sni(SSL *ssl, const char *name) { return SSL_set_tlsext_host_name(ssl, name); }
/* TLS 1.3 KeyUpdate messages received per connection, counted in the SSL's ex_data (an
   integer stored as a pointer). A KeyUpdate that asks for one makes OpenSSL write a reply, a
   system call each, inside SSL_read: a flood of them held the loop in write() for seconds
   (found in review), so the leg closes a connection past a bound (KeyUpdateBudget). */
static int key_update_index = -1;
static pthread_once_t key_update_once = PTHREAD_ONCE_INIT;
static void key_update_index_init(void) { key_update_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }

static void key_update_counter(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg) {
    (void)version; (void)arg;
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 1 || key_update_index < 0) return;
    if (((const unsigned char *)buf)[0] != SSL3_MT_KEY_UPDATE) return;
    uintptr_t count = (uintptr_t)SSL_get_ex_data(ssl, key_update_index);
    SSL_set_ex_data(ssl, key_update_index, (void *)(count + 1));
}

uint64_t pc_ssl_key_updates_received(const SSL *ssl) {
    if (key_update_index < 0) return 0;
    return (uint64_t)(uintptr_t)SSL_get_ex_data(ssl, key_update_index);
}

long pc_ssl_ctx_set_modes(SSL_CTX *ctx) {
    pthread_once(&key_update_once, key_update_index_init);
    SSL_CTX_set_msg_callback(ctx, key_update_counter);
    // Partial writes and moving buffers: our outbound buffers are Swift arrays that may move
    // between SSL_write retries. SSL_MODE_RELEASE_BUFFERS starts on (an idle connection holds
    // no record buffers); a busy connection turns it off (pc_ssl_keep_buffers) so its buffers
    // are not freed and allocated again for every record (docs/PERFORMANCE.md).
    // SSL_MODE_AUTO_RETRY off: once the records of its read-ahead buffer that carry no
    // application data (a TLS 1.3 KeyUpdate) are used up, SSL_read returns
    // (SSL_ERROR_WANT_READ) instead of reading the socket again. With it on, one read went
    // through hundreds of thousands of KeyUpdates (each a key derivation and a reply) and
    // starved the loop (found in review); now one read handles at most one buffer of them.
    SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    return SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
}
void pc_ssl_keep_buffers(SSL *ssl, int keep) {
    if (keep) {
        SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    } else {
        SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
        // Refused (0) while a record is partly read or written; the mode frees it after that.
        (void)SSL_free_buffers(ssl);
    }
}
void pc_ssl_ctx_set_read_ahead(SSL_CTX *ctx) { SSL_CTX_set_read_ahead(ctx, 1); }
long pc_ssl_ctx_set_max_send_fragment(SSL_CTX *ctx, long size) { return SSL_CTX_set_max_send_fragment(ctx, size); }
long pc_ssl_ctx_set_session_id_context(SSL_CTX *ctx) {
    static const unsigned char sid[] = "portcullis";
    return SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
}

long pc_ssl_ctx_disable_session_cache(SSL_CTX *ctx) { return SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); }
int pc_ssl_set_expected_ip(SSL *ssl, const char *ip) { return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip); }

void pc_ssl_ctx_set_hardening_options(SSL_CTX *ctx, int server) {
    uint64_t ops = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET;
    if (server) ops |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    SSL_CTX_set_options(ctx, ops);
    // No TLS 1.3 session tickets, as PostgreSQL's be-secure-openssl.c: the session cache is off,
    // so a ticket could never resume anything, yet OpenSSL would make and send two per
    // handshake (a new session, its encryption, two records) — work on every client connect.
    if (server) SSL_CTX_set_num_tickets(ctx, 0);
}

static const unsigned char pg_alpn[] = "\x0apostgresql";

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl; (void)arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, pg_alpn, sizeof pg_alpn - 1, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    // As PostgreSQL 17: a client that offers ALPN but not "postgresql" is refused.
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int direct_tls_index = -1;
static pthread_once_t direct_tls_once = PTHREAD_ONCE_INIT;
static void direct_tls_index_init(void) { direct_tls_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }

/* Direct TLS (no SSLRequest) must negotiate ALPN "postgresql": refuse a ClientHello without the
   ALPN extension during the handshake, before any application data can flow. */
static int client_hello_cb(SSL *ssl, int *alert, void *arg) {
    (void)arg;
    if (direct_tls_index < 0 || SSL_get_ex_data(ssl, direct_tls_index) == NULL) return SSL_CLIENT_HELLO_SUCCESS;
    const unsigned char *ext = NULL; size_t len = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext, &len) == 1) return SSL_CLIENT_HELLO_SUCCESS;
    *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
    return SSL_CLIENT_HELLO_ERROR;
}

void pc_ssl_ctx_use_postgresql_alpn(SSL_CTX *ctx) {
    pthread_once(&direct_tls_once, direct_tls_index_init);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
}
int pc_ssl_mark_direct(SSL *ssl) {
    pthread_once(&direct_tls_once, direct_tls_index_init);
    return SSL_set_ex_data(ssl, direct_tls_index, (void *)1);
}
int pc_ssl_alpn_is_postgresql(const SSL *ssl) {
    const unsigned char *data = NULL; unsigned int len = 0;
    SSL_get0_alpn_selected(ssl, &data, &len);
    return len == sizeof pg_alpn - 2 && memcmp(data, pg_alpn + 1, len) == 0;
}

int pc_x509_subject(X509 *cert, char *cn, size_t cnlen, char *dn, size_t dnlen) {
    X509_NAME *name = X509_get_subject_name(cert);
    if (!name) return -1;
    cn[0] = 0; dn[0] = 0;
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx >= 0) {
        X509_NAME_ENTRY *e = X509_NAME_get_entry(name, idx);
        ASN1_STRING *s = X509_NAME_ENTRY_get_data(e);
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, s);
        if (n < 0) return -1;
        // An embedded NUL would let "admin\0.evil" pass as "admin": refuse it, as PostgreSQL does.
        if ((size_t)n >= cnlen || memchr(utf8, 0, (size_t)n) != NULL) { OPENSSL_free(utf8); return -1; }
        memcpy(cn, utf8, (size_t)n); cn[n] = 0;
        OPENSSL_free(utf8);
    }
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio) return -1;
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    int n = BIO_read(bio, dn, (int)dnlen - 1);
    BIO_free(bio);
    dn[n > 0 ? n : 0] = 0;
    return 0;
}

int pc_tls_server_end_point(SSL *ssl, int peer, unsigned char *out, unsigned int *outlen) {
    X509 *cert = peer ? SSL_get1_peer_certificate(ssl) : SSL_get_certificate(ssl);
    if (!cert) return -1;
    int algo = 0;
    const EVP_MD *md = NULL;
    int rc = -1;
    if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &algo, NULL)) {
        // RFC 5929 section 4.1: MD5 and SHA-1 are replaced by SHA-256.
        if (algo == NID_md5 || algo == NID_sha1) md = EVP_sha256();
        else md = EVP_get_digestbynid(algo);
        if (md && X509_digest(cert, md, out, outlen)) rc = 0;
    }
    if (peer) X509_free(cert);
    return rc;
}

unsigned long pc_ssl_error_string(char *buf, size_t len) {
    unsigned long code = ERR_get_error();
    if (code == 0) { if (len) buf[0] = 0; ERR_clear_error(); return 0; }
    ERR_error_string_n(code, buf, len);
    ERR_clear_error();
    return code;
}

/* PBKDF2 as OpenSSL's own providers/implementations/kdfs/pbkdf2.c iterates it (the code behind
   PKCS5_PBKDF2_HMAC): one HMAC context keyed once, re-initialised without a key (which keeps it)
   for each iteration; U1 = HMAC(P, S || INT(1)), Ui = HMAC(P, Ui-1), T = U1 ^ ... ^ Uc. */
struct pc_pbkdf2 {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
    unsigned char u[32];
    unsigned char t[32];
};

void pc_pbkdf2_sha256_free(pc_pbkdf2 *state) {
    if (state == NULL) return;
    EVP_MAC_CTX_free(state->ctx);
    EVP_MAC_free(state->mac);
    OPENSSL_cleanse(state, sizeof *state);
    OPENSSL_free(state);
}

pc_pbkdf2 *pc_pbkdf2_sha256_start(const unsigned char *password, size_t passwordlen,
                                  const unsigned char *salt, size_t saltlen) {
    static const unsigned char block_one[4] = {0, 0, 0, 1};
    pc_pbkdf2 *state = OPENSSL_zalloc(sizeof *state);
    if (state == NULL) return NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end() };
    size_t outlen = 0;
    int ok = (state->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) != NULL
        && (state->ctx = EVP_MAC_CTX_new(state->mac)) != NULL
        && EVP_MAC_init(state->ctx, password, passwordlen, params) == 1
        && EVP_MAC_update(state->ctx, salt, saltlen) == 1
        && EVP_MAC_update(state->ctx, block_one, sizeof block_one) == 1
        && EVP_MAC_final(state->ctx, state->u, &outlen, sizeof state->u) == 1
        && outlen == sizeof state->u;
    if (!ok) { pc_pbkdf2_sha256_free(state); return NULL; }
    memcpy(state->t, state->u, sizeof state->t);
    return state;
}

int pc_pbkdf2_sha256_step(pc_pbkdf2 *state, long count) {
    for (long i = 0; i < count; i++) {
        size_t outlen = 0;
        if (EVP_MAC_init(state->ctx, NULL, 0, NULL) != 1
            || EVP_MAC_update(state->ctx, state->u, sizeof state->u) != 1
            || EVP_MAC_final(state->ctx, state->u, &outlen, sizeof state->u) != 1
            || outlen != sizeof state->u) return 0;
        for (size_t k = 0; k < sizeof state->t; k++) state->t[k] ^= state->u[k];
    }
    return 1;
}

void pc_pbkdf2_sha256_result(const pc_pbkdf2 *state, unsigned char *out) {
    memcpy(out, state->t, sizeof state->t);
}

int pc_hkdf_sha256(const unsigned char *key, size_t keylen, const unsigned char *salt, size_t saltlen,
                   const unsigned char *info, size_t infolen, unsigned char *out, size_t outlen) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    int ok = ctx != NULL
        && EVP_PKEY_derive_init(ctx) > 0
        && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0
        && EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, (int)saltlen) > 0
        && EVP_PKEY_CTX_set1_hkdf_key(ctx, key, (int)keylen) > 0
        && EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int)infolen) > 0
        && EVP_PKEY_derive(ctx, out, &outlen) > 0;
    EVP_PKEY_CTX_free(ctx);
    return ok ? 1 : 0;
}

int pc_aes256gcm_seal(const unsigned char *key, const unsigned char *nonce, const unsigned char *aad, size_t aadlen,
                      const unsigned char *plaintext, size_t len, unsigned char *ciphertext, unsigned char *tag) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, ok = ctx != NULL
        && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1
        && EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1
        && (aadlen == 0 || EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aadlen) == 1)
        && EVP_EncryptUpdate(ctx, ciphertext, &outl, plaintext, (int)len) == 1
        && EVP_EncryptFinal_ex(ctx, ciphertext + outl, &outl) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 1 : 0;
}

int pc_aes256gcm_open(const unsigned char *key, const unsigned char *nonce, const unsigned char *aad, size_t aadlen,
                      const unsigned char *ciphertext, size_t len, const unsigned char *tag, unsigned char *plaintext) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, ok = ctx != NULL
        && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1
        && EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1
        && (aadlen == 0 || EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aadlen) == 1)
        && EVP_DecryptUpdate(ctx, plaintext, &outl, ciphertext, (int)len) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) == 1
        && EVP_DecryptFinal_ex(ctx, plaintext + outl, &outl) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 1 : 0;
}

int pc_peer_user_name(int fd, char *name, size_t capacity) {
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    struct passwd entry;
    struct passwd *found = NULL;
    char buffer[4096];
    int rc = getpwuid_r(credentials.uid, &entry, buffer, sizeof(buffer), &found);
    if (rc != 0 || found == NULL) { errno = rc != 0 ? rc : ENOENT; return -1; }
    size_t n = strlen(found->pw_name);
    if (n + 1 > capacity) { errno = ERANGE; return -1; }
    memcpy(name, found->pw_name, n + 1);
    return 0;
}

int pc_openssl_init_without_atexit(void) {
    return OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL) == 1
        && OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT, NULL) == 1 ? 0 : -1;
}

int pc_malloc_trim(void) {
    return malloc_trim(0);
}

void pc_release_unused_stack(size_t keep) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
    void *base = NULL;
    size_t size = 0;
    if (pthread_attr_getstack(&attr, &base, &size) == 0 && base != NULL) {
        char marker;
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t low = ((uintptr_t)base + page - 1) & ~(page - 1);
        uintptr_t sp = (uintptr_t)&marker;
        if (sp > low + keep) {
            uintptr_t end = (sp - keep) & ~(page - 1);
            if (end > low) madvise((void *)low, end - low, MADV_DONTNEED);
        }
    }
    pthread_attr_destroy(&attr);
}


#include <fcntl.h>
#include <linux/falloc.h>

int pc_punch_hole(int fd, long long offset, long long length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}

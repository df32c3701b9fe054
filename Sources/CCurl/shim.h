// libcurl for the S3-compatible backup store. curl_easy_setopt and curl_easy_getinfo are
// variadic, which Swift cannot call, so each argument type gets a small typed wrapper.
#include <curl/curl.h>

typedef size_t (*portcullis_curl_data_callback)(char *data, size_t size, size_t count, void *context);

static inline CURLcode portcullis_curl_set_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode portcullis_curl_set_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode portcullis_curl_set_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode portcullis_curl_set_size(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode portcullis_curl_set_callback(CURL *handle, CURLoption option, portcullis_curl_data_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

static inline long portcullis_curl_response_code(CURL *handle) {
    long code = 0;
    if (curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK) return 0;
    return code;
}

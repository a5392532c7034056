#include "CCurl.h"

CURLcode ccurl_easy_setopt_long(CURL *curl, CURLoption option, long value) {
    return curl_easy_setopt(curl, option, value);
}
CURLcode ccurl_easy_setopt_off_t(CURL *curl, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(curl, option, value);
}
CURLcode ccurl_easy_setopt_string(CURL *curl, CURLoption option, const char *value) {
    return curl_easy_setopt(curl, option, value);
}
CURLcode ccurl_easy_setopt_ptr(CURL *curl, CURLoption option, void *value) {
    return curl_easy_setopt(curl, option, value);
}
CURLcode ccurl_easy_setopt_slist(CURL *curl, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(curl, option, value);
}
CURLcode ccurl_easy_setopt_data_fn(CURL *curl, CURLoption option, ccurl_data_fn fn) {
    return curl_easy_setopt(curl, option, fn);
}
CURLcode ccurl_easy_setopt_seek_fn(CURL *curl, ccurl_seek_fn fn) {
    return curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, fn);
}
CURLcode ccurl_easy_setopt_xferinfo_fn(CURL *curl, ccurl_xferinfo_fn fn) {
    return curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, fn);
}
CURLcode ccurl_easy_getinfo_long(CURL *curl, CURLINFO info, long *value) {
    return curl_easy_getinfo(curl, info, value);
}
CURLcode ccurl_easy_getinfo_off_t(CURL *curl, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(curl, info, value);
}
CURLcode ccurl_easy_getinfo_ptr(CURL *curl, CURLINFO info, void **value) {
    return curl_easy_getinfo(curl, info, value);
}
CURLMcode ccurl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}
CURLcode ccurl_msg_result(const CURLMsg *msg) { return msg->data.result; }
size_t ccurl_error_size(void) { return CURL_ERROR_SIZE; }
size_t ccurl_readfunc_abort(void) { return CURL_READFUNC_ABORT; }
size_t ccurl_writefunc_error(void) { return CURL_WRITEFUNC_ERROR; }

// CCurl — how libcurl is called from Swift. Nothing else lives here.
//
// curl_easy_setopt / curl_easy_getinfo / curl_multi_setopt are variadic, which
// Swift cannot call; these are typed, non-variadic wrappers (one per argument
// kind), in the style of swift-corelibs-foundation's CFURLSessionInterface.
#ifndef CCURL_H
#define CCURL_H

#include <curl/curl.h>
#include <stddef.h>

typedef size_t (*ccurl_data_fn)(char *_Nonnull ptr, size_t size, size_t nmemb, void *_Nullable userdata);
typedef int (*ccurl_seek_fn)(void *_Nullable userdata, curl_off_t offset, int origin);
typedef int (*ccurl_xferinfo_fn)(void *_Nullable userdata, curl_off_t dltotal, curl_off_t dlnow,
                                 curl_off_t ultotal, curl_off_t ulnow);

CURLcode ccurl_easy_setopt_long(CURL *_Nonnull curl, CURLoption option, long value);
CURLcode ccurl_easy_setopt_off_t(CURL *_Nonnull curl, CURLoption option, curl_off_t value);
CURLcode ccurl_easy_setopt_string(CURL *_Nonnull curl, CURLoption option, const char *_Nullable value);
CURLcode ccurl_easy_setopt_ptr(CURL *_Nonnull curl, CURLoption option, void *_Nullable value);
CURLcode ccurl_easy_setopt_slist(CURL *_Nonnull curl, CURLoption option, struct curl_slist *_Nullable value);
CURLcode ccurl_easy_setopt_data_fn(CURL *_Nonnull curl, CURLoption option, ccurl_data_fn _Nullable fn);
CURLcode ccurl_easy_setopt_seek_fn(CURL *_Nonnull curl, ccurl_seek_fn _Nullable fn);
CURLcode ccurl_easy_setopt_xferinfo_fn(CURL *_Nonnull curl, ccurl_xferinfo_fn _Nullable fn);

CURLcode ccurl_easy_getinfo_long(CURL *_Nonnull curl, CURLINFO info, long *_Nonnull value);
CURLcode ccurl_easy_getinfo_off_t(CURL *_Nonnull curl, CURLINFO info, curl_off_t *_Nonnull value);
CURLcode ccurl_easy_getinfo_ptr(CURL *_Nonnull curl, CURLINFO info, void *_Nullable *_Nonnull value);

CURLMcode ccurl_multi_setopt_long(CURLM *_Nonnull multi, CURLMoption option, long value);

/// The `result` member of a CURLMSG_DONE message (a union member in C).
CURLcode ccurl_msg_result(const CURLMsg *_Nonnull msg);

/// CURL_ERROR_SIZE, the size of the buffer CURLOPT_ERRORBUFFER needs.
size_t ccurl_error_size(void);

/// Return values a read callback may use besides a byte count.
size_t ccurl_readfunc_abort(void);
/// Return value a write callback uses to pause (unused) / the value that aborts.
size_t ccurl_writefunc_error(void);

#endif

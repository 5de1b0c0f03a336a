/* Secret files (secretfile.h): what part of a file's bytes is the secret. */
#include "security/secretfile.h"

#include <sluice/error.h>

int sl__secret_file_parse(const char *data, size_t len, size_t *secret_len)
{
    *secret_len = 0;
    if (len > SL__SECRET_FILE_MAX)
        return SL_ETOOBIG;
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    *secret_len = len;
    return SL_OK;
}

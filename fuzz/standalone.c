/* A main() for fuzz targets built without libFuzzer (gcc): replays every file named on the command
 * line (or every file in the directories named) through LLVMFuzzerTestOneInput, so CTest runs the
 * seed corpus under the sanitizers on every build. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 1;
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
        n += got;
    fclose(f);
    if (buf == NULL)
        return 1;
    /* Copy to an exact-size buffer so ASan catches reads past the input. */
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    int runs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            while (d && (e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.')
                    continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
                runs += run_file(path) == 0;
            }
            if (d)
                closedir(d);
        } else {
            runs += run_file(argv[i]) == 0;
        }
    }
    printf("replayed %d inputs\n", runs);
    return runs > 0 ? 0 : 1;
}

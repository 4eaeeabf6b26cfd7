/* A QEMU TCG plugin that counts the guest instructions a program executes (user mode), printed at exit as
 * "insns N" on QEMU's log (run with `-d plugin`). qemu-arm has no -icount in user mode; this is the exact
 * count a `-icount shift=0` clock would show, without the kernel's. The few declarations below are QEMU's
 * stable plugin C API (qemu-plugin.h, API version 1), declared here because the distribution ships no header.
 *
 *   gcc -O2 -shared -fPIC -o qemu_insn_count.so qemu_insn_count.c
 *   qemu-arm -plugin ./qemu_insn_count.so -d plugin PROGRAM ... */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_info_t;
enum { QEMU_PLUGIN_INLINE_ADD_U64 = 0 };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, int op, void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void *), void *userdata);
void qemu_plugin_outs(const char *string);

EXPORT int qemu_plugin_version = 1;

/* Optional: `-plugin ./qemu_insn_count.so,symbols=FILE` also counts, as "insns_symbols N", the instructions of
 * translation blocks that start in a function named in FILE (one symbol name a line; the main binary must keep
 * its symbol table): one stage of a program, e.g. the edge app's JPEG encoder. */
struct qemu_plugin_insn;
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *insn);

static uint64_t insns; /* user mode here runs one guest thread: a plain add is exact */
static uint64_t insns_symbols;
static char **names;
static size_t n_names;

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    const size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns, n);
    if (n_names != 0 && n != 0) {
        const char *sym = qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0));
        if (sym != NULL && bsearch(&sym, names, n_names, sizeof *names, by_name) != NULL)
            qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns_symbols, n);
    }
}

static void at_exit(qemu_plugin_id_t id, void *userdata) {
    (void)id;
    (void)userdata;
    char line[96];
    snprintf(line, sizeof line, "insns %llu\n", (unsigned long long)insns);
    qemu_plugin_outs(line);
    if (n_names != 0) {
        snprintf(line, sizeof line, "insns_symbols %llu\n", (unsigned long long)insns_symbols);
        qemu_plugin_outs(line);
    }
}

static int read_names(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    char line[512];
    size_t cap = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') continue;
        if (n_names == cap) {
            cap = cap ? 2 * cap : 256;
            char **grown = realloc(names, cap * sizeof *names);
            if (grown == NULL) return -1;
            names = grown;
        }
        if ((names[n_names++] = strdup(line)) == NULL) return -1;
    }
    fclose(f);
    qsort(names, n_names, sizeof *names, by_name);
    return 0;
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "symbols=", 8) == 0 && read_names(argv[i] + 8) != 0) {
            fprintf(stderr, "qemu_insn_count: cannot read %s\n", argv[i] + 8);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}

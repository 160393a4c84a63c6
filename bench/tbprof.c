/* Minimal QEMU TCG plugin: instructions executed per translation block start address. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*udata_cb)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define NB (1u << 22)
struct ent { uint64_t pc; uint64_t n; uint64_t ins; };
static struct ent *tab;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *outpath = "/tmp/tbprof.txt";

static struct ent *get(uint64_t pc)
{
	uint64_t h = (pc * 0x9E3779B97F4A7C15ull) >> 42;
	for (;; h = (h + 1) & (NB - 1)) {
		if (tab[h].pc == pc) return &tab[h];
		if (!tab[h].pc) { tab[h].pc = pc; return &tab[h]; }
	}
}

static void trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t pc = qemu_plugin_tb_vaddr(tb);
	size_t n = qemu_plugin_tb_n_insns(tb);
	struct ent *e;
	if (pc < 0xffff000000000000ull) return;   /* kernel only */
	pthread_mutex_lock(&lock);
	e = get(pc);
	if (n > e->ins) e->ins = n;
	pthread_mutex_unlock(&lock);
	qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &e->n, n);
}

static void atexit_cb(qemu_plugin_id_t id, void *p)
{
	FILE *f = fopen(outpath, "w");
	for (uint32_t i = 0; i < NB; i++)
		if (tab[i].pc && tab[i].n)
			fprintf(f, "%016llx %llu\n", (unsigned long long)tab[i].pc, (unsigned long long)tab[i].n);
	fclose(f);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4)) outpath = strdup(argv[i] + 4);
	tab = calloc(NB, sizeof(*tab));
	qemu_plugin_register_vcpu_tb_trans_cb(id, trans);
	qemu_plugin_register_atexit_cb(id, atexit_cb, NULL);
	return 0;
}

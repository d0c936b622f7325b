/* catalog.c — SQLite catalog (schema below; see catalog.h for the contract). */
#include "broker/catalog.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

#include "broker/sl_common.h"

/* Schema version 1. To extend: add tables/columns with a new version number and an upgrade step
 * in catalog_migrate(); never change the meaning of an existing column. */
#define CATALOG_SCHEMA 1

/* Doubles a result array (16 entries at first): the new array, or NULL with v unchanged. */
static void *grow(void *v, size_t *cap, size_t elem)
{
    size_t nc = *cap ? *cap * 2 : 16;
    void *nv = sl_realloc(v, nc * elem);
    if (nv) *cap = nc;
    return nv;
}

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS secrets(name TEXT PRIMARY KEY, value BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS streams(name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,"
    " status INTEGER NOT NULL, until_ms INTEGER NOT NULL, mode INTEGER NOT NULL,"
    " retention_hours INTEGER NOT NULL, max_record_kib INTEGER NOT NULL,"
    " next_index INTEGER NOT NULL, trim_floor_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS shards(stream TEXT NOT NULL, idx INTEGER NOT NULL,"
    " parent INTEGER NOT NULL, adjacent INTEGER NOT NULL, start_hash TEXT NOT NULL,"
    " end_hash TEXT NOT NULL, created_ms INTEGER NOT NULL, closed_ms INTEGER NOT NULL,"
    " PRIMARY KEY(stream, idx));"
    "CREATE TABLE IF NOT EXISTS tags(stream TEXT NOT NULL, key TEXT NOT NULL,"
    " value TEXT NOT NULL, PRIMARY KEY(stream, key));"
    "CREATE TABLE IF NOT EXISTS scalings(stream TEXT NOT NULL, at_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta(ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY(ns, key));";

struct brk_catalog {
    sqlite3 *db;
    pthread_mutex_t mu; /* recursive: begin holds it across statements */
};

static void lock(brk_catalog *c) { pthread_mutex_lock(&c->mu); }
static void unlock(brk_catalog *c) { pthread_mutex_unlock(&c->mu); }

static int db_err(int rc)
{
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) return SL_ECORRUPT;
    if (rc == SQLITE_NOMEM) return SL_ENOMEM;
    return SL_EIO;
}

/* Prepares sql and binds text/int64 arguments described by fmt ('s' text, 'i' int64, 'b' blob
 * as (ptr,len)). */
static int prep(brk_catalog *c, sqlite3_stmt **st, const char *sql, const char *fmt, ...)
{
    va_list ap;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) return db_err(rc);
    va_start(ap, fmt);
    for (int i = 0; fmt && fmt[i] && rc == SQLITE_OK; i++) {
        if (fmt[i] == 's') {
            rc = sqlite3_bind_text(*st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
        } else if (fmt[i] == 'i') {
            rc = sqlite3_bind_int64(*st, i + 1, va_arg(ap, int64_t));
        } else {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            rc = sqlite3_bind_blob64(*st, i + 1, p, n, SQLITE_TRANSIENT);
        }
    }
    va_end(ap);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
        return db_err(rc);
    }
    return 0;
}

/* Runs a statement that returns no rows. */
static int run(brk_catalog *c, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    (void)c;
    return rc == SQLITE_DONE ? 0 : db_err(rc);
}

static int exec(brk_catalog *c, const char *sql)
{
    return sqlite3_exec(c->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : SL_EIO;
}

static int catalog_migrate(brk_catalog *c, sl_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = exec(c, schema_sql);
    if (rc) return sl_err_set(err, rc, "catalog: %s", sqlite3_errmsg(c->db));
    rc = prep(c, &st, "SELECT version FROM schema_version", NULL);
    if (rc) return sl_err_set(err, rc, "catalog: %s", sqlite3_errmsg(c->db));
    int step = sqlite3_step(st);
    int64_t v = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sl_err_set(err, db_err(step), "catalog: %s", sqlite3_errmsg(c->db));
    if (v > CATALOG_SCHEMA)
        return sl_err_set(err, SL_ECORRUPT, "catalog: schema version %lld is newer than %d",
                          (long long)v, CATALOG_SCHEMA);
    if (v == 0) {
        rc = prep(c, &st, "INSERT INTO schema_version(version) VALUES(?)", "i",
                  (int64_t)CATALOG_SCHEMA);
        if (!rc) rc = run(c, st);
        if (rc) return sl_err_set(err, rc, "catalog: %s", sqlite3_errmsg(c->db));
    }
    return 0;
}

int brk_catalog_open(brk_catalog **out, const char *path, sl_err *err)
{
    pthread_mutexattr_t ma;
    int rc;
    brk_catalog *c = sl_calloc(1, sizeof *c);
    if (!c) return sl_err_set(err, SL_ENOMEM, "out of memory");
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                         SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = sl_err_set(err, db_err(rc), "catalog %s: %s", path,
                        c->db ? sqlite3_errmsg(c->db) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(c->db, 5000);
    if (exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;") != 0) {
        rc = sl_err_set(err, SL_EIO, "catalog %s: %s", path, sqlite3_errmsg(c->db));
        goto fail;
    }
    rc = catalog_migrate(c, err);
    if (rc) goto fail;
    *out = c;
    return 0;
fail:
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->mu);
    sl_free(c);
    return rc;
}

void brk_catalog_close(brk_catalog *c)
{
    if (!c) return;
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->mu);
    sl_free(c);
}

int brk_catalog_begin(brk_catalog *c)
{
    lock(c);
    int rc = exec(c, "BEGIN IMMEDIATE");
    if (rc) unlock(c);
    return rc;
}

int brk_catalog_commit(brk_catalog *c)
{
    int rc = exec(c, "COMMIT");
    if (rc) exec(c, "ROLLBACK");
    unlock(c);
    return rc;
}

void brk_catalog_rollback(brk_catalog *c)
{
    exec(c, "ROLLBACK");
    unlock(c);
}

int brk_catalog_secret(brk_catalog *c, const char *name, uint8_t *buf, size_t len)
{
    sqlite3_stmt *st = NULL;
    lock(c);
    int rc = prep(c, &st, "SELECT value FROM secrets WHERE name=?", "s", name);
    if (rc) goto out;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW && (size_t)sqlite3_column_bytes(st, 0) == len) {
        memcpy(buf, sqlite3_column_blob(st, 0), len);
        sqlite3_finalize(st);
        goto out;
    }
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = db_err(step);
        goto out;
    }
    if (RAND_bytes(buf, (int)len) != 1) {
        rc = SL_EIO;
        goto out;
    }
    rc = prep(c, &st, "INSERT OR REPLACE INTO secrets(name, value) VALUES(?, ?)", "sb", name,
              (const void *)buf, len);
    if (!rc) rc = run(c, st);
out:
    unlock(c);
    return rc;
}

int brk_catalog_stream_put(brk_catalog *c, const brk_cat_stream *s)
{
    sqlite3_stmt *st = NULL;
    lock(c);
    int rc = prep(c, &st,
                  "INSERT OR REPLACE INTO streams(name, created_ms, status, until_ms, mode,"
                  " retention_hours, max_record_kib, next_index, trim_floor_ms)"
                  " VALUES(?,?,?,?,?,?,?,?,?)",
                  "siiiiiiii", s->name, s->created_ms, (int64_t)s->status, s->until_ms,
                  (int64_t)s->mode, (int64_t)s->retention_hours, (int64_t)s->max_record_kib,
                  (int64_t)s->next_index, s->trim_floor_ms);
    if (!rc) rc = run(c, st);
    unlock(c);
    return rc;
}

int brk_catalog_stream_del(brk_catalog *c, const char *name)
{
    static const char *const sqls[] = {
        "DELETE FROM streams WHERE name=?", "DELETE FROM shards WHERE stream=?",
        "DELETE FROM tags WHERE stream=?", "DELETE FROM scalings WHERE stream=?",
    };
    int rc = brk_catalog_begin(c);
    if (rc) return rc;
    for (size_t i = 0; i < sizeof sqls / sizeof sqls[0] && !rc; i++) {
        sqlite3_stmt *st = NULL;
        rc = prep(c, &st, sqls[i], "s", name);
        if (!rc) rc = run(c, st);
    }
    if (rc) {
        brk_catalog_rollback(c);
        return rc;
    }
    return brk_catalog_commit(c);
}

int brk_catalog_streams(brk_catalog *c, brk_cat_stream **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    brk_cat_stream *v = NULL;
    size_t cnt = 0;
    size_t cap = 0;
    int step;
    lock(c);
    int rc = prep(c, &st,
                  "SELECT name, created_ms, status, until_ms, mode, retention_hours,"
                  " max_record_kib, next_index, trim_floor_ms FROM streams ORDER BY name", NULL);
    if (rc) goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            void *nv = grow(v, &cap, sizeof *v);
            if (!nv) {
                rc = SL_ENOMEM;
                break;
            }
            v = nv;
        }
        brk_cat_stream *s = &v[cnt++];
        memset(s, 0, sizeof *s);
        const char *name = (const char *)sqlite3_column_text(st, 0);
        snprintf(s->name, sizeof s->name, "%s", name ? name : "");
        s->created_ms = sqlite3_column_int64(st, 1);
        s->status = (int)sqlite3_column_int64(st, 2);
        s->until_ms = sqlite3_column_int64(st, 3);
        s->mode = (int)sqlite3_column_int64(st, 4);
        s->retention_hours = (uint32_t)sqlite3_column_int64(st, 5);
        s->max_record_kib = (uint32_t)sqlite3_column_int64(st, 6);
        s->next_index = (uint32_t)sqlite3_column_int64(st, 7);
        s->trim_floor_ms = sqlite3_column_int64(st, 8);
    }
    if (!rc && step != SQLITE_DONE) rc = db_err(step);
    sqlite3_finalize(st);
out:
    unlock(c);
    if (rc) {
        sl_free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

int brk_catalog_shard_put(brk_catalog *c, const char *stream, const brk_cat_shard *s)
{
    sqlite3_stmt *st = NULL;
    lock(c);
    int rc = prep(c, &st,
                  "INSERT OR REPLACE INTO shards(stream, idx, parent, adjacent, start_hash,"
                  " end_hash, created_ms, closed_ms) VALUES(?,?,?,?,?,?,?,?)",
                  "siiissii", stream, (int64_t)s->index, s->parent, s->adjacent, s->start_hash,
                  s->end_hash, s->created_ms, s->closed_ms);
    if (!rc) rc = run(c, st);
    unlock(c);
    return rc;
}

int brk_catalog_shards(brk_catalog *c, const char *stream, brk_cat_shard **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    brk_cat_shard *v = NULL;
    size_t cnt = 0;
    size_t cap = 0;
    int step;
    lock(c);
    int rc = prep(c, &st,
                  "SELECT idx, parent, adjacent, start_hash, end_hash, created_ms, closed_ms"
                  " FROM shards WHERE stream=? ORDER BY idx", "s", stream);
    if (rc) goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            void *nv = grow(v, &cap, sizeof *v);
            if (!nv) {
                rc = SL_ENOMEM;
                break;
            }
            v = nv;
        }
        brk_cat_shard *s = &v[cnt++];
        memset(s, 0, sizeof *s);
        s->index = (uint32_t)sqlite3_column_int64(st, 0);
        s->parent = sqlite3_column_int64(st, 1);
        s->adjacent = sqlite3_column_int64(st, 2);
        const char *a = (const char *)sqlite3_column_text(st, 3);
        const char *b = (const char *)sqlite3_column_text(st, 4);
        snprintf(s->start_hash, sizeof s->start_hash, "%s", a ? a : "");
        snprintf(s->end_hash, sizeof s->end_hash, "%s", b ? b : "");
        s->created_ms = sqlite3_column_int64(st, 5);
        s->closed_ms = sqlite3_column_int64(st, 6);
    }
    if (!rc && step != SQLITE_DONE) rc = db_err(step);
    sqlite3_finalize(st);
out:
    unlock(c);
    if (rc) {
        sl_free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

int brk_catalog_tag_put(brk_catalog *c, const char *stream, const char *key, const char *value)
{
    sqlite3_stmt *st = NULL;
    lock(c);
    int rc = prep(c, &st, "INSERT OR REPLACE INTO tags(stream, key, value) VALUES(?,?,?)", "sss",
                  stream, key, value ? value : "");
    if (!rc) rc = run(c, st);
    unlock(c);
    return rc;
}

int brk_catalog_tag_del(brk_catalog *c, const char *stream, const char *key)
{
    sqlite3_stmt *st = NULL;
    lock(c);
    int rc = prep(c, &st, "DELETE FROM tags WHERE stream=? AND key=?", "ss", stream, key);
    if (!rc) rc = run(c, st);
    unlock(c);
    return rc;
}

int brk_catalog_tags(brk_catalog *c, const char *stream, brk_tag **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    brk_tag *v = NULL;
    size_t cnt = 0;
    size_t cap = 0;
    int step;
    lock(c);
    int rc = prep(c, &st, "SELECT key, value FROM tags WHERE stream=? ORDER BY key", "s", stream);
    if (rc) goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 8;
            brk_tag *nv = sl_realloc(v, nc * sizeof *v);
            if (!nv) {
                rc = SL_ENOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const char *val = (const char *)sqlite3_column_text(st, 1);
        v[cnt].key = sl_strdup(k ? k : "");
        v[cnt].value = sl_strdup(val ? val : "");
        cnt++;
        if (!v[cnt - 1].key || !v[cnt - 1].value) {
            rc = SL_ENOMEM;
            break;
        }
    }
    if (!rc && step != SQLITE_DONE) rc = db_err(step);
    sqlite3_finalize(st);
out:
    unlock(c);
    if (rc) {
        brk_tags_free(v, cnt);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

int brk_catalog_scaling_add(brk_catalog *c, const char *stream, int64_t at_ms)
{
    sqlite3_stmt *st = NULL;
    lock(c);
    int rc = prep(c, &st, "INSERT INTO scalings(stream, at_ms) VALUES(?,?)", "si", stream, at_ms);
    if (!rc) rc = run(c, st);
    unlock(c);
    return rc;
}

int brk_catalog_scaling_count(brk_catalog *c, const char *stream, int64_t since_ms,
                              uint32_t *count)
{
    sqlite3_stmt *st = NULL;
    lock(c);
    int rc = prep(c, &st, "SELECT COUNT(*) FROM scalings WHERE stream=? AND at_ms>?", "si",
                  stream, since_ms);
    if (!rc) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) *count = (uint32_t)sqlite3_column_int64(st, 0);
        else rc = db_err(step);
        sqlite3_finalize(st);
    }
    unlock(c);
    return rc;
}

int brk_catalog_meta_put(brk_catalog *c, const char *ns, const char *key, const char *value,
                         size_t len)
{
    sqlite3_stmt *st = NULL;
    lock(c);
    int rc = prep(c, &st, "INSERT OR REPLACE INTO meta(ns, key, value) VALUES(?,?,?)", "ssb", ns,
                  key, (const void *)(value ? value : ""), len);
    if (!rc) rc = run(c, st);
    unlock(c);
    return rc;
}

int brk_catalog_meta_get(brk_catalog *c, const char *ns, const char *key, char **value,
                         size_t *len)
{
    sqlite3_stmt *st = NULL;
    lock(c);
    int rc = prep(c, &st, "SELECT value FROM meta WHERE ns=? AND key=?", "ss", ns, key);
    if (rc) goto out;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        char *v = sl_malloc(n + 1);
        if (!v) {
            rc = SL_ENOMEM;
        } else {
            if (n) memcpy(v, sqlite3_column_blob(st, 0), n);
            v[n] = '\0';
            *value = v;
            if (len) *len = n;
        }
    } else {
        rc = step == SQLITE_DONE ? SL_ENOTFOUND : db_err(step);
    }
    sqlite3_finalize(st);
out:
    unlock(c);
    return rc;
}

int brk_catalog_meta_del(brk_catalog *c, const char *ns, const char *key)
{
    sqlite3_stmt *st = NULL;
    lock(c);
    int rc = prep(c, &st, "DELETE FROM meta WHERE ns=? AND key=?", "ss", ns, key);
    if (!rc) rc = run(c, st);
    unlock(c);
    return rc;
}

int brk_catalog_meta_keys(brk_catalog *c, const char *ns, char ***keys, size_t *n)
{
    sqlite3_stmt *st = NULL;
    char **v = NULL;
    size_t cnt = 0;
    size_t cap = 0;
    int step;
    lock(c);
    int rc = prep(c, &st, "SELECT key FROM meta WHERE ns=? ORDER BY key", "s", ns);
    if (rc) goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            void *nv = grow(v, &cap, sizeof *v);
            if (!nv) {
                rc = SL_ENOMEM;
                break;
            }
            v = nv;
        }
        const char *k = (const char *)sqlite3_column_text(st, 0);
        v[cnt] = sl_strdup(k ? k : "");
        if (!v[cnt]) {
            rc = SL_ENOMEM;
            break;
        }
        cnt++;
    }
    if (!rc && step != SQLITE_DONE) rc = db_err(step);
    sqlite3_finalize(st);
out:
    unlock(c);
    if (rc) {
        brk_names_free(v, cnt);
        return rc;
    }
    *keys = v;
    *n = cnt;
    return 0;
}

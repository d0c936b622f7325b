/* validate.h — request validation the way AWS (Coral) reports it (SPEC 1.2, 1.3).
 *
 * A schema is a table of val_field, one per member, in the order AWS reports violations. A
 * decoded request (runtime/wire.h tree) is checked in two passes:
 *   1. types: the first member whose JSON/CBOR type does not fit ends the check with
 *      SL_ESERIAL and the Java-flavoured SerializationException text kinesalite mirrors
 *      ("class java.lang.String can not be converted to an Integer"); JSON blobs must be strict
 *      base64 (wire_b64_check). Unknown members and nulls are ignored (a null is "absent").
 *   2. constraints: every violation (not null, value range, pattern, length, enum) becomes one
 *      "Value 'x' at 'memberPath' failed to satisfy constraint: ..." entry; up to 10 are joined
 *      into SL_EVALIDATION "N validation error(s) detected: a; b".
 * Member paths are lower-camel and nest like AWS: 'records.1.member.partitionKey',
 * 'streamModeDetails.streamMode', 'tags.<key>.member'.
 *
 * Thread-safety: pure functions (the compiled regular expressions are built once, under
 * pthread_once).
 */
#ifndef RT_VALIDATE_H
#define RT_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "broker/sl_common.h"

enum val_type {
    VAL_STRING,
    VAL_INT,       /* "Integer" in messages */
    VAL_LONG,      /* "Long" */
    VAL_BOOL,
    VAL_BLOB,
    VAL_TIMESTAMP,
    VAL_LIST,
    VAL_MAP,
    VAL_STRUCT,
};

enum val_pattern {
    VAL_PAT_NONE = 0,
    VAL_PAT_NAME,     /* [a-zA-Z0-9_.-]+ : stream, shard, consumer names */
    VAL_PAT_HASHKEY,  /* 0|([1-9]\d{0,38}) */
    VAL_PAT_SEQNO,    /* 0|([1-9]\d{0,128}) */
    VAL_PAT_ARN,      /* arn:aws.*:kinesis:.*:\d{12}:stream/\S+ */
};

#define VAL_UNSET INT64_MIN

typedef struct val_field {
    const char *name;            /* wire member name ("StreamName"); NULL ends a table */
    enum val_type type;
    bool not_null;
    const char *unless;          /* not_null is waived when this sibling member is present */
    int64_t min_value, max_value;  /* numbers; VAL_UNSET = no bound */
    int64_t min_len, max_len;    /* strings (UTF-16 units, like Java), blobs (bytes), lists,
                                    maps (entries); VAL_UNSET = no bound */
    enum val_pattern pattern;
    const char *const *enum_values;   /* NULL-terminated */
    const struct val_field *members;  /* STRUCT: member table; LIST/MAP: the element (named
                                         "member") */
    int64_t key_min_len, key_max_len; /* MAP keys; VAL_UNSET = no bound */
} val_field;

/* Checks req (an object) against a NULL-name-terminated table. 0 when valid; SL_ESERIAL or
 * SL_EVALIDATION with AWS's message in err; SL_ENOMEM. */
int val_check(const cJSON *req, const val_field *fields, sl_err *err);

/* Does s (NUL-terminated) match the pattern in full? */
bool val_match(enum val_pattern p, const char *s);
/* The pattern as AWS prints it in messages. */
const char *val_pattern_text(enum val_pattern p);
/* Length of UTF-8 text in UTF-16 code units (what Java's String.length() reports). */
size_t val_utf16_len(const char *s, size_t n);

#endif

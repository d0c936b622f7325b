/* test_esm_filter.c — FilterCriteria (SPEC 3.9): every operator, AND/OR, nesting, metadata vs
 * data, non-JSON data, and the validation errors of invalid criteria. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "runtime/esm_filter.h"

#define SEQ "49646437577108476416916876405825929425585429676275269634"
#define TS_MS 1714644901421LL

/* {"Filters":[{"Pattern":p1},{"Pattern":p2}...]} with the patterns JSON-escaped. */
static char *criteria(const char *const *pats, size_t n)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "Filters");
    for (size_t i = 0; i < n; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "Pattern", pats[i]);
        cJSON_AddItemToArray(list, f);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static fn_event_record rec(const char *pk, const void *data, size_t len)
{
    fn_event_record r = {"shardId-000000000000", SEQ, pk, strlen(pk), data, len, TS_MS};
    return r;
}

/* Does the one-pattern filter pass a record with partition key pk and data (text)? */
static bool m(const char *pattern, const char *pk, const char *data)
{
    const char *pats[1] = {pattern};
    char *crit = criteria(pats, 1);
    esm_filter *f = NULL;
    sl_err err = {0};
    int rc = esm_filter_compile(&f, crit, &err);
    if (rc != 0) fail_msg("pattern %s rejected: %s", pattern, err.msg);
    fn_event_record r = rec(pk, data, data ? strlen(data) : 0);
    bool ok = esm_filter_match(f, &r);
    esm_filter_free(f);
    cJSON_free(crit);
    return ok;
}

/* Compiles one pattern expecting SL_EINVAL; returns the message (static buffer). */
static const char *bad(const char *pattern)
{
    static sl_err err;
    const char *pats[1] = {pattern};
    char *crit = criteria(pats, 1);
    esm_filter *f = (esm_filter *)0x1;
    memset(&err, 0, sizeof(err));
    assert_int_equal(esm_filter_compile(&f, crit, &err), SL_EINVAL);
    assert_ptr_equal(f, (esm_filter *)0x1); /* out untouched on error */
    assert_int_equal(err.code, SL_EINVAL);
    cJSON_free(crit);
    return err.msg;
}

#define D "{\"temp\":21,\"city\":\"Oslo\",\"n\":300,\"f\":300.0,\"neg\":-5,\"nul\":null," \
          "\"t\":true,\"e\":\"\",\"tags\":[\"a\",\"b\",7],\"o\":{\"x\":{\"y\":\"deep\"}}," \
          "\"items\":[{\"k\":\"v1\",\"q\":1},{\"k\":\"v2\",\"q\":2}],\"empty\":[]}"

static void test_filter_without_criteria_matches_all(void **state)
{
    (void)state;
    static const char *const none[] = {NULL, "", "{}", "{\"Filters\":[]}",
                                       "{\"Filters\":null}"};
    fn_event_record r = rec("k", "not json", 8);
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        esm_filter *f = NULL;
        assert_int_equal(esm_filter_compile(&f, none[i], NULL), 0);
        assert_true(esm_filter_match(f, &r));
        esm_filter_free(f);
    }
    esm_filter_free(NULL);
}

static void test_filter_exact_string_on_metadata(void **state)
{
    (void)state;
    assert_true(m("{\"partitionKey\":[\"sensor-7\"]}", "sensor-7", D));
    assert_false(m("{\"partitionKey\":[\"sensor-7\"]}", "sensor-8", D));
    assert_false(m("{\"partitionKey\":[\"Sensor-7\"]}", "sensor-7", D)); /* case-sensitive */
    assert_false(m("{\"partitionKey\":[\"sensor\"]}", "sensor-7", D));   /* exact, not prefix */
}

static void test_filter_exact_string_on_other_metadata(void **state)
{
    (void)state;
    assert_true(m("{\"sequenceNumber\":[\"" SEQ "\"]}", "k", NULL));
    assert_true(m("{\"kinesisSchemaVersion\":[\"1.0\"]}", "k", NULL));
    assert_false(m("{\"kinesisSchemaVersion\":[1.0]}", "k", NULL)); /* string, not number */
}

static void test_filter_or_within_a_list(void **state)
{
    (void)state;
    const char *p = "{\"partitionKey\":[\"a\",\"b\",\"c\"]}";
    assert_true(m(p, "a", NULL));
    assert_true(m(p, "c", NULL));
    assert_false(m(p, "d", NULL));
}

static void test_filter_and_across_keys(void **state)
{
    (void)state;
    const char *p = "{\"partitionKey\":[\"k1\"],\"data\":{\"city\":[\"Oslo\"],\"temp\":[21]}}";
    assert_true(m(p, "k1", D));
    assert_false(m(p, "k2", D));
    assert_false(m("{\"data\":{\"city\":[\"Oslo\"],\"temp\":[22]}}", "k1", D));
}

static void test_filter_nested_objects(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"o\":{\"x\":{\"y\":[\"deep\"]}}}}", "k", D));
    assert_false(m("{\"data\":{\"o\":{\"x\":{\"y\":[\"shallow\"]}}}}", "k", D));
    assert_false(m("{\"data\":{\"o\":{\"y\":[\"deep\"]}}}", "k", D));
    /* a nested pattern against a scalar offers no leaves */
    assert_false(m("{\"data\":{\"city\":{\"x\":[\"Oslo\"]}}}", "k", D));
}

static void test_filter_numbers_equal_by_text(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"n\":[300]}}", "k", D));
    assert_false(m("{\"data\":{\"n\":[300.0]}}", "k", D));
    assert_true(m("{\"data\":{\"f\":[300.0]}}", "k", D));
    assert_false(m("{\"data\":{\"f\":[300]}}", "k", D));
    assert_false(m("{\"data\":{\"n\":[\"300\"]}}", "k", D)); /* string vs number */
    assert_true(m("{\"data\":{\"neg\":[-5]}}", "k", D));
}

static void test_filter_null_empty_string_and_booleans(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"nul\":[null]}}", "k", D));
    assert_false(m("{\"data\":{\"city\":[null]}}", "k", D));
    assert_false(m("{\"data\":{\"missing\":[null]}}", "k", D)); /* null != absent */
}

static void test_filter_empty_string(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"e\":[\"\"]}}", "k", D));
    assert_false(m("{\"data\":{\"city\":[\"\"]}}", "k", D));
}

static void test_filter_booleans(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"t\":[true]}}", "k", D));
    assert_false(m("{\"data\":{\"t\":[false]}}", "k", D));
    assert_false(m("{\"data\":{\"t\":[\"true\"]}}", "k", D));
}

static void test_filter_anything_but(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"city\":[{\"anything-but\":[\"Bergen\",\"Paris\"]}]}}", "k", D));
    assert_false(m("{\"data\":{\"city\":[{\"anything-but\":[\"Oslo\",\"Paris\"]}]}}", "k", D));
    assert_false(m("{\"data\":{\"city\":[{\"anything-but\":\"Oslo\"}]}}", "k", D));
    assert_true(m("{\"data\":{\"city\":[{\"anything-but\":\"oslo\"}]}}", "k", D));
}

static void test_filter_anything_but_numbers(void **state)
{
    (void)state;
    assert_false(m("{\"data\":{\"n\":[{\"anything-but\":300}]}}", "k", D));
    assert_true(m("{\"data\":{\"n\":[{\"anything-but\":[100,200]}]}}", "k", D));
}

static void test_filter_anything_but_prefix_suffix(void **state)
{
    (void)state;
    assert_false(m("{\"data\":{\"city\":[{\"anything-but\":{\"prefix\":\"Os\"}}]}}", "k", D));
    assert_true(m("{\"data\":{\"city\":[{\"anything-but\":{\"prefix\":\"Be\"}}]}}", "k", D));
    assert_false(m("{\"data\":{\"city\":[{\"anything-but\":{\"suffix\":\"lo\"}}]}}", "k", D));
}

static void test_filter_anything_but_ignore_case(void **state)
{
    (void)state;
    assert_false(m("{\"data\":{\"city\":[{\"anything-but\":{\"equals-ignore-case\":"
                   "[\"OSLO\",\"x\"]}}]}}", "k", D));
    assert_true(m("{\"data\":{\"city\":[{\"anything-but\":{\"equals-ignore-case\":\"ber\"}}]}}",
                  "k", D));
}

static void test_filter_anything_but_missing_field(void **state)
{
    (void)state;
    /* anything-but never matches a missing field */
    assert_false(m("{\"data\":{\"missing\":[{\"anything-but\":\"x\"}]}}", "k", D));
    assert_true(m("{\"partitionKey\":[{\"anything-but\":[\"a\",\"b\"]}]}", "c", NULL));
}

static void test_filter_numeric_comparisons(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"n\":[{\"numeric\":[\"=\",300]}]}}", "k", D));
    assert_true(m("{\"data\":{\"f\":[{\"numeric\":[\"=\",300]}]}}", "k", D)); /* by value */
}

static void test_filter_numeric_ranges(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"temp\":[{\"numeric\":[\">\",10,\"<=\",21]}]}}", "k", D));
    assert_false(m("{\"data\":{\"temp\":[{\"numeric\":[\">\",10,\"<\",21]}]}}", "k", D));
    assert_true(m("{\"data\":{\"temp\":[{\"numeric\":[\">=\",21]}]}}", "k", D));
    assert_false(m("{\"data\":{\"temp\":[{\"numeric\":[\">\",21]}]}}", "k", D));
    assert_true(m("{\"data\":{\"temp\":[{\"numeric\":[\"<\",21.5]}]}}", "k", D));
    assert_true(m("{\"data\":{\"neg\":[{\"numeric\":[\"<=\",-5]}]}}", "k", D));
}

static void test_filter_numeric_needs_numbers(void **state)
{
    (void)state;
    assert_false(m("{\"data\":{\"city\":[{\"numeric\":[\">\",0]}]}}", "k", D)); /* string */
}

static void test_filter_numeric_on_arrival_time(void **state)
{
    (void)state;
    /* metadata: the arrival time is a number of epoch seconds */
    assert_true(m("{\"approximateArrivalTimestamp\":[{\"numeric\":[\">\",1714644901]}]}", "k",
                  NULL));
    assert_false(m("{\"approximateArrivalTimestamp\":[{\"numeric\":[\">\",1714644902]}]}", "k",
                   NULL));
    assert_true(m("{\"approximateArrivalTimestamp\":[1714644901.421]}", "k", NULL));
}

static void test_filter_exists(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"city\":[{\"exists\":true}]}}", "k", D));
    assert_false(m("{\"data\":{\"missing\":[{\"exists\":true}]}}", "k", D));
}

static void test_filter_exists_false(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"missing\":[{\"exists\":false}]}}", "k", D));
    assert_false(m("{\"data\":{\"city\":[{\"exists\":false}]}}", "k", D));
    assert_true(m("{\"data\":{\"nul\":[{\"exists\":true}]}}", "k", D));
}

static void test_filter_exists_on_leaves_only(void **state)
{
    (void)state;
    /* exists works on leaves: an object or an empty array has none */
    assert_false(m("{\"data\":{\"o\":[{\"exists\":true}]}}", "k", D));
    assert_true(m("{\"data\":{\"empty\":[{\"exists\":false}]}}", "k", D));
    assert_true(m("{\"data\":{\"nope\":{\"deeper\":[{\"exists\":false}]}}}", "k", D));
    assert_true(m("{\"partitionKey\":[{\"exists\":true}]}", "k", NULL));
}

static void test_filter_prefix_suffix_ignore_case(void **state)
{
    (void)state;
    assert_true(m("{\"partitionKey\":[{\"prefix\":\"us-\"}]}", "us-west", NULL));
    assert_false(m("{\"partitionKey\":[{\"prefix\":\"us-\"}]}", "eu-west", NULL));
    assert_true(m("{\"partitionKey\":[{\"prefix\":\"\"}]}", "x", NULL));
}

static void test_filter_suffix(void **state)
{
    (void)state;
    assert_true(m("{\"partitionKey\":[{\"suffix\":\".png\"}]}", "img.png", NULL));
    assert_false(m("{\"partitionKey\":[{\"suffix\":\".png\"}]}", "img.PNG", NULL));
    assert_true(m("{\"partitionKey\":[{\"suffix\":{\"equals-ignore-case\":\".png\"}}]}",
                  "img.PNG", NULL));
    assert_true(m("{\"partitionKey\":[{\"prefix\":{\"equals-ignore-case\":\"US-\"}}]}",
                  "us-east", NULL));
}

static void test_filter_equals_ignore_case(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"city\":[{\"equals-ignore-case\":\"oSLO\"}]}}", "k", D));
    assert_false(m("{\"data\":{\"city\":[{\"equals-ignore-case\":\"osl\"}]}}", "k", D));
    assert_false(m("{\"data\":{\"n\":[{\"prefix\":\"3\"}]}}", "k", D)); /* numbers aren't text */
}

static void test_filter_wildcard(void **state)
{
    (void)state;
    assert_true(m("{\"partitionKey\":[{\"wildcard\":\"dir/*.png\"}]}", "dir/a/b.png", NULL));
    assert_false(m("{\"partitionKey\":[{\"wildcard\":\"dir/*.png\"}]}", "dir/a.jpg", NULL));
    assert_true(m("{\"partitionKey\":[{\"wildcard\":\"*\"}]}", "any", NULL));
    assert_true(m("{\"partitionKey\":[{\"wildcard\":\"*\"}]}", "", NULL));
    assert_true(m("{\"partitionKey\":[{\"wildcard\":\"a\\\\*b\"}]}", "a*b", NULL));
    assert_false(m("{\"partitionKey\":[{\"wildcard\":\"a\\\\*b\"}]}", "axxb", NULL));
    assert_true(m("{\"partitionKey\":[{\"wildcard\":\"*-*-7\"}]}", "a-b-c-7", NULL));
}

static void test_filter_dollar_or(void **state)
{
    (void)state;
    const char *p = "{\"$or\":[{\"partitionKey\":[\"a\"]},{\"data\":{\"temp\":"
                    "[{\"numeric\":[\">\",100]}]}}]}";
    assert_true(m(p, "a", D));
    assert_false(m(p, "b", D));
    assert_true(m(p, "b", "{\"temp\":101}"));
}

static void test_filter_nested_dollar_or(void **state)
{
    (void)state;
    /* nested $or, ANDed with a sibling key */
    const char *q = "{\"data\":{\"city\":[\"Oslo\"],\"$or\":[{\"temp\":[21]},{\"n\":[1]}]}}";
    assert_true(m(q, "k", D));
    assert_false(m(q, "k", "{\"city\":\"Oslo\",\"temp\":5,\"n\":2}"));
}

static void test_filter_event_arrays(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"tags\":[\"b\"]}}", "k", D));
    assert_true(m("{\"data\":{\"tags\":[7]}}", "k", D));
    assert_false(m("{\"data\":{\"tags\":[\"c\"]}}", "k", D));
}

static void test_filter_arrays_of_objects(void **state)
{
    (void)state;
    assert_true(m("{\"data\":{\"items\":{\"k\":[\"v2\"]}}}", "k", D));
    /* fields of one pattern object are matched within the same array element */
    assert_false(m("{\"data\":{\"items\":{\"k\":[\"v1\"],\"q\":[2]}}}", "k", D));
    assert_true(m("{\"data\":{\"items\":{\"k\":[\"v2\"],\"q\":[2]}}}", "k", D));
}

static void test_filter_any_of_several_filters(void **state)
{
    (void)state;
    const char *pats[] = {"{\"partitionKey\":[\"a\"]}", "{\"data\":{\"city\":[\"Oslo\"]}}"};
    char *crit = criteria(pats, 2);
    esm_filter *f = NULL;
    assert_int_equal(esm_filter_compile(&f, crit, NULL), 0);
    fn_event_record r1 = rec("a", "binary\x01", 7);
    fn_event_record r2 = rec("b", D, strlen(D));
    fn_event_record r3 = rec("b", "{\"city\":\"Rome\"}", 15);
    fn_event_record r4 = rec("b", "garbage", 7);
    assert_true(esm_filter_match(f, &r1));  /* first filter; the second drops non-JSON */
    assert_true(esm_filter_match(f, &r2));
    assert_false(esm_filter_match(f, &r3));
    assert_false(esm_filter_match(f, &r4));
    esm_filter_free(f);
    cJSON_free(crit);
}

static void test_filter_non_json_data(void **state)
{
    (void)state;
    /* data pattern + non-JSON data: dropped, even with exists:false */
    assert_false(m("{\"data\":{\"x\":[{\"exists\":false}]}}", "k", "plain text"));
    assert_false(m("{\"data\":{\"x\":[{\"exists\":false}]}}", "k", NULL));
    assert_false(m("{\"data\":{\"x\":[{\"exists\":false}]}}", "k", "{\"a\":1} trailing"));
    assert_false(m("{\"data\":{\"x\":[{\"exists\":false}]}}", "k", "\xff\xfe{}"));
    assert_false(m("{\"$or\":[{\"data\":{\"x\":[1]}},{\"partitionKey\":[\"k\"]}]}", "k",
                   "plain text"));
}

static void test_filter_metadata_pattern_ignores_data_format(void **state)
{
    (void)state;
    /* metadata-only pattern: non-JSON data doesn't matter */
    assert_true(m("{\"partitionKey\":[\"k\"]}", "k", "plain text"));
    /* JSON data that is not an object is still JSON */
    assert_true(m("{\"data\":{\"x\":[{\"exists\":false}]}}", "k", "42"));
}

static void test_filter_unicode_and_escapes_in_data(void **state)
{
    (void)state;
    /* escapes and unicode in data */
    assert_true(m("{\"data\":{\"city\":[\"Z\xc3\xbcrich\"]}}", "k", "{\"city\":\"Z\\u00fcrich\"}"));
    assert_true(m("{\"data\":{\"s\":[\"\xf0\x9f\x98\x80\"]}}", "k", "{\"s\":\"\\ud83d\\ude00\"}"));
}

static void test_filter_deep_or_large_data_is_safe(void **state)
{
    (void)state;
    size_t depth = 20000;
    char *deep = malloc(2 * depth + 1);
    for (size_t i = 0; i < depth; i++) {
        deep[i] = '[';
        deep[2 * depth - 1 - i] = ']';
    }
    deep[2 * depth] = '\0';
    assert_false(m("{\"data\":{\"x\":[{\"exists\":false}]}}", "k", deep)); /* too deep: not JSON */
    free(deep);
    /* a big object parses beyond the stack arena */
    size_t cap = 200000;
    char *big = malloc(cap);
    size_t n = (size_t)snprintf(big, cap, "{");
    for (int i = 0; i < 5000; i++) n += (size_t)snprintf(big + n, cap - n, "\"k%d\":%d,", i, i);
    snprintf(big + n, cap - n, "\"last\":\"yes\"}");
    assert_true(m("{\"data\":{\"k4999\":[4999],\"last\":[\"yes\"]}}", "k", big));
    free(big);
}

static void test_filter_duplicate_keys_last_wins(void **state)
{
    (void)state;
    assert_true(m("{\"partitionKey\":[\"a\"],\"partitionKey\":[\"b\"]}", "b", NULL));
    assert_false(m("{\"partitionKey\":[\"a\"],\"partitionKey\":[\"b\"]}", "a", NULL));
    assert_true(m("{\"data\":{\"city\":[\"Rome\"]}}", "k",
                  "{\"city\":\"Oslo\",\"city\":\"Rome\"}"));
}

static void test_filter_every_pattern_key_must_exist(void **state)
{
    (void)state;
    assert_false(m("{\"data\":{\"city\":[\"Oslo\"],\"absent\":[\"x\"]}}", "k", D));
    assert_false(m("{\"region\":[\"us-east-1\"]}", "k", D));
    assert_true(m("{}", "k", "x")); /* no constraint */
}

static void test_filter_rejects_invalid_patterns(void **state)
{
    (void)state;
    assert_non_null(strstr(bad("{\"partitionKey\":[\"a\""), "not valid JSON"));
    assert_non_null(strstr(bad("not json"), "not valid JSON"));
    assert_non_null(strstr(bad("[\"a\"]"), "must be a JSON object"));
}

static void test_filter_rejects_unknown_operator(void **state)
{
    (void)state;
    assert_non_null(strstr(bad("{\"partitionKey\":[{\"regex\":\"a.*\"}]}"),
                           "Unrecognized match type regex"));
}

static void test_filter_rejects_non_json_data_pattern(void **state)
{
    (void)state;
    assert_non_null(strstr(bad("{\"data\":[\"plain\"]}"), "data pattern must be a JSON object"));
    assert_non_null(strstr(bad("{\"data\":[{\"prefix\":\"x\"}]}"), "data pattern"));
    assert_non_null(strstr(bad("{\"$or\":[{\"data\":\"x\"},{\"partitionKey\":[\"a\"]}]}"),
                           "data pattern"));
}

static void test_filter_rejects_bad_structure(void **state)
{
    (void)state;
    assert_non_null(strstr(bad("{\"partitionKey\":\"a\"}"), "must be an array or an object"));
    assert_non_null(strstr(bad("{\"partitionKey\":[[\"a\"]]}"), "not an array"));
    assert_non_null(strstr(bad("{\"partitionKey\":[{\"prefix\":\"a\",\"suffix\":\"b\"}]}"),
                           "exactly one operator"));
    assert_non_null(strstr(bad("{\"partitionKey\":[{\"prefix\":5}]}"), "prefix"));
    assert_non_null(strstr(bad("{\"partitionKey\":[{\"exists\":\"yes\"}]}"), "exists"));
}

static void test_filter_rejects_bad_numeric(void **state)
{
    (void)state;
    assert_non_null(strstr(bad("{\"d\":[{\"numeric\":[\">\"]}]}"), "numeric"));
    assert_non_null(strstr(bad("{\"d\":[{\"numeric\":[\"!=\",1]}]}"), "operator"));
    assert_non_null(strstr(bad("{\"d\":[{\"numeric\":[\">\",\"1\"]}]}"), "number"));
    assert_non_null(strstr(bad("{\"d\":[{\"numeric\":[\"<\",1,\">\",0]}]}"), "range"));
    assert_non_null(strstr(bad("{\"d\":[{\"numeric\":[\">\",5,\"<\",1]}]}"), "bottom"));
}

static void test_filter_rejects_bad_anything_but_wildcard_or(void **state)
{
    (void)state;
    assert_non_null(strstr(bad("{\"d\":[{\"anything-but\":[[1]]}]}"), "anything-but"));
    assert_non_null(strstr(bad("{\"d\":[{\"anything-but\":{\"numeric\":[\">\",1]}}]}"),
                           "anything-but"));
    assert_non_null(strstr(bad("{\"d\":[{\"wildcard\":\"a**b\"}]}"), "wildcard"));
    assert_non_null(strstr(bad("{\"$or\":{\"a\":[1]}}"), "$or"));
    assert_non_null(strstr(bad("{\"$or\":[\"a\"]}"), "$or"));
}

static void test_filter_rejects_long_pattern(void **state)
{
    (void)state;
    /* > 4096 characters */
    char *longp = malloc(5000);
    int n = snprintf(longp, 5000, "{\"partitionKey\":[\"");
    memset(longp + n, 'x', 4100);
    strcpy(longp + n + 4100, "\"]}");
    assert_non_null(strstr(bad(longp), "4096"));
    free(longp);
    /* every message starts like AWS's */
    assert_non_null(strstr(bad("{\"x\":[{\"bogus\":1}]}"), "Invalid filter pattern definition."));
}

static void test_filter_rejects_invalid_criteria(void **state)
{
    (void)state;
    sl_err err;
    esm_filter *f = NULL;
    assert_int_equal(esm_filter_compile(&f, "{\"Filters\":", &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "FilterCriteria"));
    assert_int_equal(esm_filter_compile(&f, "{\"Filters\":{}}", &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "list"));
    assert_int_equal(esm_filter_compile(&f, "{\"Filters\":[{\"Pattern\":5}]}", &err),
                     SL_EINVAL);
    assert_non_null(strstr(err.msg, "Pattern must be a string"));
    assert_int_equal(esm_filter_compile(&f, "{\"Filters\":[{}]}", &err), SL_EINVAL);
}

static void test_filter_rejects_more_than_five_filters(void **state)
{
    (void)state;
    sl_err err;
    esm_filter *f = NULL;
    const char *six[6];
    for (int i = 0; i < 6; i++) six[i] = "{\"partitionKey\":[\"a\"]}";
    char *crit = criteria(six, 6);
    assert_int_equal(esm_filter_compile(&f, crit, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "maximum is 5"));
    cJSON_free(crit);
    crit = criteria(six, 5);
    assert_int_equal(esm_filter_compile(&f, crit, &err), 0);
    esm_filter_free(f);
    cJSON_free(crit);
    /* the second filter is bad: the whole criteria is rejected, nothing leaks */
    const char *mixed[] = {"{\"partitionKey\":[\"a\"]}", "{\"partitionKey\":[{\"nope\":1}]}"};
    crit = criteria(mixed, 2);
    assert_int_equal(esm_filter_compile(&f, crit, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "nope"));
    cJSON_free(crit);
}

static void test_filter_compile_survives_allocation_failure(void **state)
{
    (void)state;
    const char *pats[] = {"{\"partitionKey\":[\"a\"],\"data\":{\"x\":[\"\\u00e9\"]}}"};
    char *crit = criteria(pats, 1);
    for (long k = 1; k < 6; k++) {
        esm_filter *f = NULL;
        sl_err err;
        sl_alloc_fail_after(k);
        int rc = esm_filter_compile(&f, crit, &err);
        sl_alloc_fail_after(0);
        if (rc == 0) {
            fn_event_record r = rec("a", "{\"x\":\"\xc3\xa9\"}", 10);
            assert_true(esm_filter_match(f, &r));
            esm_filter_free(f);
        } else {
            assert_int_equal(rc, SL_ENOMEM);
        }
    }
    cJSON_free(crit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_without_criteria_matches_all),
        cmocka_unit_test(test_filter_exact_string_on_metadata),
        cmocka_unit_test(test_filter_exact_string_on_other_metadata),
        cmocka_unit_test(test_filter_or_within_a_list),
        cmocka_unit_test(test_filter_and_across_keys),
        cmocka_unit_test(test_filter_nested_objects),
        cmocka_unit_test(test_filter_numbers_equal_by_text),
        cmocka_unit_test(test_filter_null_empty_string_and_booleans),
        cmocka_unit_test(test_filter_empty_string),
        cmocka_unit_test(test_filter_booleans),
        cmocka_unit_test(test_filter_anything_but),
        cmocka_unit_test(test_filter_anything_but_numbers),
        cmocka_unit_test(test_filter_anything_but_prefix_suffix),
        cmocka_unit_test(test_filter_anything_but_ignore_case),
        cmocka_unit_test(test_filter_anything_but_missing_field),
        cmocka_unit_test(test_filter_numeric_comparisons),
        cmocka_unit_test(test_filter_numeric_ranges),
        cmocka_unit_test(test_filter_numeric_needs_numbers),
        cmocka_unit_test(test_filter_numeric_on_arrival_time),
        cmocka_unit_test(test_filter_exists),
        cmocka_unit_test(test_filter_exists_false),
        cmocka_unit_test(test_filter_exists_on_leaves_only),
        cmocka_unit_test(test_filter_prefix_suffix_ignore_case),
        cmocka_unit_test(test_filter_suffix),
        cmocka_unit_test(test_filter_equals_ignore_case),
        cmocka_unit_test(test_filter_wildcard),
        cmocka_unit_test(test_filter_dollar_or),
        cmocka_unit_test(test_filter_nested_dollar_or),
        cmocka_unit_test(test_filter_event_arrays),
        cmocka_unit_test(test_filter_arrays_of_objects),
        cmocka_unit_test(test_filter_any_of_several_filters),
        cmocka_unit_test(test_filter_non_json_data),
        cmocka_unit_test(test_filter_metadata_pattern_ignores_data_format),
        cmocka_unit_test(test_filter_unicode_and_escapes_in_data),
        cmocka_unit_test(test_filter_deep_or_large_data_is_safe),
        cmocka_unit_test(test_filter_duplicate_keys_last_wins),
        cmocka_unit_test(test_filter_every_pattern_key_must_exist),
        cmocka_unit_test(test_filter_rejects_invalid_patterns),
        cmocka_unit_test(test_filter_rejects_unknown_operator),
        cmocka_unit_test(test_filter_rejects_non_json_data_pattern),
        cmocka_unit_test(test_filter_rejects_bad_structure),
        cmocka_unit_test(test_filter_rejects_bad_numeric),
        cmocka_unit_test(test_filter_rejects_bad_anything_but_wildcard_or),
        cmocka_unit_test(test_filter_rejects_long_pattern),
        cmocka_unit_test(test_filter_rejects_invalid_criteria),
        cmocka_unit_test(test_filter_rejects_more_than_five_filters),
        cmocka_unit_test(test_filter_compile_survives_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

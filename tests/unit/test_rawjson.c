#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/rawjson.h"

/* Literals may hold NUL bytes, so their length comes from sizeof, not strlen. */
#define VALID(literal, type)                                                                       \
  { literal, sizeof literal - 1, type }
#define INVALID(literal, offset, reason)                                                           \
  { literal, sizeof literal - 1, offset, reason }

struct valid_case {
  const char *text;
  size_t len;
  enum fw_rawjson_type type;
};

static const struct valid_case valid_cases[] = {
    /* numbers */
    VALID("0", FW_RAWJSON_NUMBER),
    VALID("-0", FW_RAWJSON_NUMBER),
    VALID("7", FW_RAWJSON_NUMBER),
    VALID("-7", FW_RAWJSON_NUMBER),
    VALID("19.99", FW_RAWJSON_NUMBER),
    VALID("0.0", FW_RAWJSON_NUMBER),
    VALID("1e10", FW_RAWJSON_NUMBER),
    VALID("1E+2", FW_RAWJSON_NUMBER),
    VALID("0e0", FW_RAWJSON_NUMBER),
    VALID("-1.5e-3", FW_RAWJSON_NUMBER),
    /* Precision and range are the reader's business; the text is kept as it is. */
    VALID("123456789012345678901234567890", FW_RAWJSON_NUMBER),
    VALID("1e400", FW_RAWJSON_NUMBER),
    /* literals */
    VALID("true", FW_RAWJSON_TRUE),
    VALID("false", FW_RAWJSON_FALSE),
    VALID("null", FW_RAWJSON_NULL),
    /* strings */
    VALID("\"\"", FW_RAWJSON_STRING),
    VALID("\"x\"", FW_RAWJSON_STRING),
    VALID("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", FW_RAWJSON_STRING),
    VALID("\"\\u00e9\\u00E9\\uD83D\\uDE00\\udbff\\udfff\\u0000\"", FW_RAWJSON_STRING),
    VALID("\"\x7f\"", FW_RAWJSON_STRING), /* DEL is not a control character to JSON */
    /* UTF-8 at the edges of each sequence length and around the surrogates */
    VALID("\"\xc2\x80\"", FW_RAWJSON_STRING),         /* U+0080 */
    VALID("\"\xdf\xbf\"", FW_RAWJSON_STRING),         /* U+07FF */
    VALID("\"\xe0\xa0\x80\"", FW_RAWJSON_STRING),     /* U+0800 */
    VALID("\"\xed\x9f\xbf\"", FW_RAWJSON_STRING),     /* U+D7FF */
    VALID("\"\xee\x80\x80\"", FW_RAWJSON_STRING),     /* U+E000 */
    VALID("\"\xef\xbf\xbf\"", FW_RAWJSON_STRING),     /* U+FFFF */
    VALID("\"\xf0\x90\x80\x80\"", FW_RAWJSON_STRING), /* U+10000 */
    VALID("\"\xf4\x8f\xbf\xbf\"", FW_RAWJSON_STRING), /* U+10FFFF */
    VALID("\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", FW_RAWJSON_STRING),
    /* containers */
    VALID("[]", FW_RAWJSON_ARRAY),
    VALID("{}", FW_RAWJSON_OBJECT),
    VALID("[ ]", FW_RAWJSON_ARRAY),
    VALID("{ }", FW_RAWJSON_OBJECT),
    VALID(" \t\n\r[1 , 2]\r\n", FW_RAWJSON_ARRAY),
    VALID("{\"a\":{\"b\":[]}}", FW_RAWJSON_OBJECT),
    VALID("[[], {}, [{}]]", FW_RAWJSON_ARRAY),
    VALID("{\"\":0}", FW_RAWJSON_OBJECT),
    VALID("{\"a\":1,\"a\":2}", FW_RAWJSON_OBJECT), /* RFC 8259 allows repeated names */
    VALID("[1,\"two\",true,false,null,{\"x\":[]},-0.5e+7]", FW_RAWJSON_ARRAY),
    VALID("{ \"a\" : [ \"]\" , \"}\" ] , \"b\" : \"{[\" }", FW_RAWJSON_OBJECT),
};

struct invalid_case {
  const char *text;
  size_t len;
  size_t offset;
  const char *reason;
};

static const struct invalid_case invalid_cases[] = {
    /* nothing, or not a value */
    INVALID("", 0, "unexpected end of input"),
    INVALID("   ", 3, "unexpected end of input"),
    INVALID("]", 0, "unexpected character"),
    INVALID("'a'", 0, "unexpected character"),
    INVALID("\xef\xbb\xbf"
            "1",
            0, "unexpected character"), /* a byte order mark */
    /* comments, trailing and missing separators */
    INVALID("// c\n1", 0, "unexpected character"),
    INVALID("/* c */ 1", 0, "unexpected character"),
    INVALID("[1] // c", 4, "trailing characters"),
    INVALID("[1,]", 3, "unexpected character"),
    INVALID("{\"a\":1,}", 7, "expected a member name"),
    INVALID("[,1]", 1, "unexpected character"),
    INVALID("[1,,2]", 3, "unexpected character"),
    INVALID("{,}", 1, "expected a member name"),
    INVALID("[1 2]", 3, "expected ',' or ']'"),
    INVALID("{\"a\":1 \"b\":2}", 7, "expected ',' or '}'"),
    INVALID("{\"a\" 1}", 5, "expected ':'"),
    INVALID("{\"a\":1,\"b\"}", 10, "expected ':'"),
    INVALID("{\"a\"::1}", 5, "unexpected character"),
    INVALID("{a:1}", 1, "expected a member name"),
    INVALID("{1:2}", 1, "expected a member name"),
    /* mismatched and unclosed brackets */
    INVALID("[}", 1, "unexpected character"),
    INVALID("{]", 1, "expected a member name"),
    INVALID("[1}", 2, "expected ',' or ']'"),
    INVALID("{\"a\":1]", 6, "expected ',' or '}'"),
    INVALID("[1]]", 3, "trailing characters"),
    INVALID("{\"a\":1}}", 7, "trailing characters"),
    INVALID("[", 1, "unexpected end of input"),
    INVALID("{", 1, "unexpected end of input"),
    INVALID("{\"a\"", 4, "unexpected end of input"),
    INVALID("{\"a\":", 5, "unexpected end of input"),
    INVALID("{\"a\":1", 6, "unexpected end of input"),
    INVALID("[1,", 3, "unexpected end of input"),
    INVALID("[1, 2", 5, "unexpected end of input"),
    INVALID("1 2", 2, "trailing characters"),
    /* numbers */
    INVALID("NaN", 0, "unexpected character"),
    INVALID("nan", 1, "invalid literal"),
    INVALID("Infinity", 0, "unexpected character"),
    INVALID("-Infinity", 1, "invalid number"),
    INVALID("+1", 0, "unexpected character"),
    INVALID("-", 1, "unexpected end of input"),
    INVALID("01", 1, "leading zero"),
    INVALID("00", 1, "leading zero"),
    INVALID("-01", 2, "leading zero"),
    INVALID(".5", 0, "unexpected character"),
    INVALID("1.", 2, "unexpected end of input"),
    INVALID("1.e5", 2, "invalid number"),
    INVALID("1e", 2, "unexpected end of input"),
    INVALID("1e+", 3, "unexpected end of input"),
    INVALID("[1e-]", 4, "invalid number"),
    INVALID("0x10", 1, "trailing characters"),
    INVALID("1.5.2", 3, "trailing characters"),
    /* literals */
    INVALID("tru", 3, "unexpected end of input"),
    INVALID("nul", 3, "unexpected end of input"),
    INVALID("True", 0, "unexpected character"),
    INVALID("trUe", 2, "invalid literal"),
    INVALID("falsey", 5, "trailing characters"),
    INVALID("[truex]", 5, "expected ',' or ']'"),
    /* escapes */
    INVALID("\"abc", 4, "unexpected end of input"),
    INVALID("\"\\", 1, "invalid escape"),
    INVALID("\"\\x\"", 1, "invalid escape"),
    INVALID("\"\\U0041\"", 1, "invalid escape"),
    INVALID("\"\\u12\"", 1, "invalid escape"),
    INVALID("\"\\u12G4\"", 1, "invalid escape"),
    INVALID("\"\\uD800\"", 1, "unpaired surrogate"),
    INVALID("\"\\uDBFF\"", 1, "unpaired surrogate"),
    INVALID("\"\\uDC00\"", 1, "unpaired surrogate"),
    INVALID("\"\\uD800x\"", 1, "unpaired surrogate"),
    INVALID("\"a\\uD800\\u0041\"", 2, "unpaired surrogate"),
    INVALID("\"\\uD800\\uD800\"", 1, "unpaired surrogate"),
    INVALID("\"\\uDC00\\uD800\"", 1, "unpaired surrogate"),
    INVALID("{\"\\uD800\":1}", 2, "unpaired surrogate"),
    /* control characters and NUL */
    INVALID("\"a\x01\"", 2, "control character in string"),
    INVALID("\"\t\"", 1, "control character in string"),
    INVALID("\"\n\"", 1, "control character in string"),
    INVALID("{\"a\x1f\":1}", 3, "control character in string"),
    INVALID("\"a\0b\"", 2, "control character in string"),
    INVALID("\0", 0, "unexpected character"),
    INVALID("1\0", 1, "trailing characters"),
    INVALID("[\0]", 1, "unexpected character"),
    /* whitespace is space, tab, line feed and carriage return only */
    INVALID("\f1", 0, "unexpected character"),
    INVALID("\v1", 0, "unexpected character"),
    INVALID("\xc2\xa0"
            "1",
            0, "unexpected character"), /* NO-BREAK SPACE */
    INVALID("[1,\xc2\xa0"
            "2]",
            3, "unexpected character"),
    /* UTF-8: overlong forms, surrogates, beyond U+10FFFF, stray and missing bytes */
    INVALID("\"\xc0\xaf\"", 1, "invalid UTF-8"),
    INVALID("\"\xc1\xbf\"", 1, "invalid UTF-8"),
    INVALID("\"\xe0\x80\xaf\"", 1, "invalid UTF-8"),
    INVALID("\"\xe0\x9f\xbf\"", 1, "invalid UTF-8"),
    INVALID("\"\xf0\x80\x80\xaf\"", 1, "invalid UTF-8"),
    INVALID("\"\xf0\x8f\xbf\xbf\"", 1, "invalid UTF-8"),
    INVALID("\"\xed\xa0\x80\"", 1, "invalid UTF-8"), /* U+D800 */
    INVALID("\"\xed\xbf\xbf\"", 1, "invalid UTF-8"), /* U+DFFF */
    INVALID("\"\xf4\x90\x80\x80\"", 1, "invalid UTF-8"),
    INVALID("\"\xf5\x80\x80\x80\"", 1, "invalid UTF-8"),
    INVALID("\"\xff\"", 1, "invalid UTF-8"),
    INVALID("\"ab\x80\"", 3, "invalid UTF-8"),
    INVALID("\"\xe2\x82\"", 1, "invalid UTF-8"),
    INVALID("\"\xe2\x82", 1, "invalid UTF-8"),
    INVALID("\"\xc3(\"", 1, "invalid UTF-8"),
    INVALID("{\"\xc0\xaf\":1}", 2, "invalid UTF-8"),
};

static bool is_json_whitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void accepts_valid_json(void **state) {
  (void)state;
  for (size_t i = 0; i < FW_ARRAY_LEN(valid_cases); i++) {
    const struct valid_case *c = &valid_cases[i];
    struct fw_rawjson value = {0};
    size_t offset = 0;
    const char *reason = NULL;
    if (fw_rawjson_validate(c->text, c->len, &value, &offset, &reason) != FW_OK)
      fail_msg("valid case %zu refused at %zu: %s", i, offset, reason);
    /* The value is the input less its surrounding whitespace, in place. */
    assert_true(value.text >= c->text && value.len > 0);
    assert_true(value.text + value.len <= c->text + c->len);
    for (const char *p = c->text; p < value.text; p++)
      assert_true(is_json_whitespace(*p));
    for (const char *p = value.text + value.len; p < c->text + c->len; p++)
      assert_true(is_json_whitespace(*p));
    assert_false(is_json_whitespace(value.text[value.len - 1]));
    assert_int_equal(fw_rawjson_type(value), c->type);
  }
}

static void rejects_invalid_json_with_offset_and_reason(void **state) {
  (void)state;
  for (size_t i = 0; i < FW_ARRAY_LEN(invalid_cases); i++) {
    const struct invalid_case *c = &invalid_cases[i];
    size_t offset = SIZE_MAX;
    const char *reason = NULL;
    int rc = fw_rawjson_validate(c->text, c->len, NULL, &offset, &reason);
    if (rc != FW_EINVAL || offset != c->offset || !reason || strcmp(reason, c->reason) != 0)
      fail_msg("invalid case %zu: got %d at %zu (%s), want offset %zu (%s)", i, rc, offset,
               reason ? reason : "no reason", c->offset, c->reason);
  }
  /* Every out-parameter is optional. */
  assert_int_equal(fw_rawjson_validate("[1,]", 4, NULL, NULL, NULL), FW_EINVAL);
  assert_int_equal(fw_rawjson_validate("[1]", 3, NULL, NULL, NULL), FW_OK);
}

/* `depth` arrays, one inside the other; the innermost is empty. */
static char *nested_arrays(size_t depth) {
  char *text = malloc(2 * depth + 1);
  assert_non_null(text);
  memset(text, '[', depth);
  memset(text + depth, ']', depth);
  text[2 * depth] = '\0';
  return text;
}

/* `depth` objects, each the member "a" of the one outside it; the innermost is {"a":1}. */
static char *nested_objects(size_t depth) {
  char *text = malloc(6 * depth + 2);
  assert_non_null(text);
  char *p = text;
  for (size_t i = 0; i < depth; i++, p += 5)
    memcpy(p, "{\"a\":", 5);
  *p++ = '1';
  memset(p, '}', depth);
  p[depth] = '\0';
  return text;
}

static void caps_nesting_at_max_depth(void **state) {
  (void)state;
  size_t offset = 0;
  const char *reason = NULL;

  char *arrays = nested_arrays(FW_RAWJSON_MAX_DEPTH);
  assert_int_equal(fw_rawjson_validate(arrays, strlen(arrays), NULL, NULL, NULL), FW_OK);
  free(arrays);
  arrays = nested_arrays(FW_RAWJSON_MAX_DEPTH + 1);
  assert_int_equal(fw_rawjson_validate(arrays, strlen(arrays), NULL, &offset, &reason), FW_EINVAL);
  assert_int_equal(offset, FW_RAWJSON_MAX_DEPTH); /* the bracket one level too deep */
  assert_string_equal(reason, "nesting too deep");
  free(arrays);

  char *objects = nested_objects(FW_RAWJSON_MAX_DEPTH);
  assert_int_equal(fw_rawjson_validate(objects, strlen(objects), NULL, NULL, NULL), FW_OK);
  free(objects);
  objects = nested_objects(FW_RAWJSON_MAX_DEPTH + 1);
  assert_int_equal(fw_rawjson_validate(objects, strlen(objects), NULL, &offset, &reason),
                   FW_EINVAL);
  assert_int_equal(offset, 5 * FW_RAWJSON_MAX_DEPTH);
  assert_string_equal(reason, "nesting too deep");
  free(objects);

  /* Depth is nesting, not the number of containers: siblings each get the full depth. */
  char *inner = nested_arrays(FW_RAWJSON_MAX_DEPTH - 1);
  size_t inner_len = strlen(inner);
  char *siblings = malloc(2 * inner_len + 4);
  assert_non_null(siblings);
  sprintf(siblings, "[%s,%s]", inner, inner);
  assert_int_equal(fw_rawjson_validate(siblings, strlen(siblings), NULL, NULL, NULL), FW_OK);
  free(siblings);
  free(inner);

  /* Far deeper input is refused at the cap, without recursing into it. */
  char *deep = nested_arrays(1000000);
  assert_int_equal(fw_rawjson_validate(deep, strlen(deep), NULL, &offset, &reason), FW_EINVAL);
  assert_int_equal(offset, FW_RAWJSON_MAX_DEPTH);
  free(deep);
}

static struct fw_rawjson validated(const char *text) {
  struct fw_rawjson value = {0};
  assert_int_equal(fw_rawjson_validate(text, strlen(text), &value, NULL, NULL), FW_OK);
  return value;
}

static void assert_span(struct fw_rawjson value, const char *expected) {
  assert_int_equal(value.len, strlen(expected));
  assert_memory_equal(value.text, expected, value.len);
}

static void spans_are_exact_bytes(void **state) {
  (void)state;
  const char text[] = " {\"a\": 19.99 , \"b\":[1, {\"c\":\"x\"}]}\n";
  struct fw_rawjson root = validated(text);
  assert_ptr_equal(root.text, text + 1);
  assert_span(root, "{\"a\": 19.99 , \"b\":[1, {\"c\":\"x\"}]}");

  struct fw_rawjson a, b, element, c;
  assert_int_equal(fw_rawjson_member(root, "a", &a), FW_OK);
  assert_ptr_equal(a.text, text + 7); /* borrowed from the input, not copied */
  assert_span(a, "19.99");
  assert_int_equal(fw_rawjson_member(root, "b", &b), FW_OK);
  assert_span(b, "[1, {\"c\":\"x\"}]");
  assert_int_equal(fw_rawjson_element(b, 1, &element), FW_OK);
  assert_span(element, "{\"c\":\"x\"}");
  assert_int_equal(fw_rawjson_member(element, "c", &c), FW_OK);
  assert_span(c, "\"x\"");

  /* Brackets and quotes inside strings do not end a value early. */
  struct fw_rawjson tricky = validated("[\"]\\\"}\", {\"k\":\"[{\"}, 3]");
  assert_int_equal(fw_rawjson_element(tricky, 0, &element), FW_OK);
  assert_span(element, "\"]\\\"}\"");
  assert_int_equal(fw_rawjson_element(tricky, 1, &element), FW_OK);
  assert_span(element, "{\"k\":\"[{\"}");
  assert_int_equal(fw_rawjson_element(tricky, 2, &element), FW_OK);
  assert_span(element, "3");
}

static void finds_members_by_unescaped_name(void **state) {
  (void)state;
  struct fw_rawjson value;
  struct fw_rawjson object =
      validated("{\"\\u0061\":1, \"a\\\"b\":2, \"\\uD83D\\uDE00\":3, \"\\u00e9\":4, "
                "\"x\\u0000\":5, \"\":6, \"\\/\":7}");
  assert_int_equal(fw_rawjson_member(object, "a", &value), FW_OK);
  assert_span(value, "1");
  assert_int_equal(fw_rawjson_member(object, "a\"b", &value), FW_OK);
  assert_span(value, "2");
  assert_int_equal(fw_rawjson_member(object, "\xf0\x9f\x98\x80", &value), FW_OK);
  assert_span(value, "3");
  assert_int_equal(fw_rawjson_member(object, "\xc3\xa9", &value), FW_OK);
  assert_span(value, "4");
  assert_int_equal(fw_rawjson_member(object, "", &value), FW_OK);
  assert_span(value, "6");
  assert_int_equal(fw_rawjson_member(object, "/", &value), FW_OK);
  assert_span(value, "7");

  /* A name holding a NUL matches nothing: not even what precedes the NUL. */
  assert_int_equal(fw_rawjson_member(object, "x", &value), FW_ENOTFOUND);
  /* Neither prefixes nor extensions match. */
  assert_int_equal(fw_rawjson_member(validated("{\"ab\":1}"), "a", &value), FW_ENOTFOUND);
  assert_int_equal(fw_rawjson_member(validated("{\"a\":1}"), "ab", &value), FW_ENOTFOUND);
  assert_int_equal(fw_rawjson_member(validated("{}"), "a", &value), FW_ENOTFOUND);
}

static void last_duplicate_member_wins(void **state) {
  (void)state;
  struct fw_rawjson value;
  assert_int_equal(fw_rawjson_member(validated("{\"a\":1,\"b\":2,\"a\":3}"), "a", &value), FW_OK);
  assert_span(value, "3");
  /* Spelt differently, the same name. */
  assert_int_equal(fw_rawjson_member(validated("{\"a\":1,\"\\u0061\":[3]}"), "a", &value), FW_OK);
  assert_span(value, "[3]");
}

static void finds_elements_by_index(void **state) {
  (void)state;
  struct fw_rawjson array = validated("[ 10 ,\"20\",[30] ]");
  struct fw_rawjson value = {0};
  assert_int_equal(fw_rawjson_element(array, 0, &value), FW_OK);
  assert_span(value, "10");
  assert_int_equal(fw_rawjson_element(array, 1, &value), FW_OK);
  assert_span(value, "\"20\"");
  assert_int_equal(fw_rawjson_element(array, 2, &value), FW_OK);
  assert_span(value, "[30]");
  assert_int_equal(fw_rawjson_element(array, 3, &value), FW_ENOTFOUND);
  assert_int_equal(fw_rawjson_element(array, SIZE_MAX, &value), FW_ENOTFOUND);
  assert_int_equal(fw_rawjson_element(validated("[]"), 0, &value), FW_ENOTFOUND);
  assert_int_equal(fw_rawjson_element(validated("[ ]"), 0, &value), FW_ENOTFOUND);
}

static void iterates_members_in_order(void **state) {
  (void)state;
  struct fw_rawjson object =
      validated("{ \"z\" : 1 ,\"a\":[2],\"m\":{\"k\":null}, \"z\":\"again\" }");
  static const char *const names[] = {"\"z\"", "\"a\"", "\"m\"", "\"z\""};
  static const char *const values[] = {"1", "[2]", "{\"k\":null}", "\"again\""};
  size_t cursor = 0;
  struct fw_rawjson name, value;
  for (size_t i = 0; i < FW_ARRAY_LEN(names); i++) {
    assert_true(fw_rawjson_next_member(object, &cursor, &name, &value));
    assert_span(name, names[i]);
    assert_span(value, values[i]);
  }
  assert_false(fw_rawjson_next_member(object, &cursor, &name, &value));
  assert_false(fw_rawjson_next_member(object, &cursor, &name, &value)); /* and stays there */

  cursor = 0;
  assert_false(fw_rawjson_next_member(validated("{}"), &cursor, &name, &value));
  cursor = 0;
  assert_false(fw_rawjson_next_member(validated("[1]"), &cursor, &name, &value));
}

static void assert_unescapes_to(const char *json, const char *expected, size_t expected_len) {
  char out[64];
  assert_int_equal(fw_rawjson_string(validated(json), out, sizeof out), FW_OK);
  assert_memory_equal(out, expected, expected_len);
  assert_int_equal(out[expected_len], '\0');
}

static void unescapes_strings(void **state) {
  (void)state;
  assert_unescapes_to("\"plain\"", "plain", 5);
  assert_unescapes_to("\"\"", "", 0);
  assert_unescapes_to("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8);
  assert_unescapes_to("\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6);
  /* Surrogate pairs become one four-byte sequence. */
  assert_unescapes_to("\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80", 4);
  assert_unescapes_to("\"\\ud800\\udc00\"", "\xf0\x90\x80\x80", 4);
  assert_unescapes_to("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4);
  /* UTF-8 in the text passes through as it is. */
  assert_unescapes_to("\"\xc3\xa9\xf0\x9f\x98\x80\"", "\xc3\xa9\xf0\x9f\x98\x80", 6);
  assert_unescapes_to("\"a\\u0000b\"", "a\0b", 3);
}

static void refuses_strings_that_do_not_fit(void **state) {
  (void)state;
  char out[16];
  struct fw_rawjson abc = validated("\"abc\"");
  assert_int_equal(fw_rawjson_string(abc, out, 4), FW_OK); /* three bytes and the NUL */
  assert_string_equal(out, "abc");
  assert_int_equal(fw_rawjson_string(abc, out, 3), FW_ETOOBIG);
  assert_string_equal(out, ""); /* left empty, not cut */
  assert_int_equal(fw_rawjson_string(abc, out, 0), FW_ETOOBIG);
  assert_int_equal(fw_rawjson_string(validated("\"\""), out, 1), FW_OK);
  assert_int_equal(fw_rawjson_string(validated("\"\""), out, 0), FW_ETOOBIG);

  /* A character is never split: é needs two bytes and the NUL a third. */
  struct fw_rawjson e_acute = validated("\"\\u00e9\"");
  assert_int_equal(fw_rawjson_string(e_acute, out, 2), FW_ETOOBIG);
  assert_string_equal(out, "");
  assert_int_equal(fw_rawjson_string(e_acute, out, 3), FW_OK);
  assert_string_equal(out, "\xc3\xa9");

  /* string.len - 1 bytes are always enough. */
  struct fw_rawjson pair = validated("\"\\uD83D\\uDE00\"");
  assert_int_equal(fw_rawjson_string(pair, out, pair.len - 1), FW_OK);
  assert_int_equal(fw_rawjson_string(pair, out, 4), FW_ETOOBIG);
  assert_int_equal(fw_rawjson_string(pair, out, 5), FW_OK);
  assert_string_equal(out, "\xf0\x9f\x98\x80");
}

static void refuses_values_of_the_wrong_type(void **state) {
  (void)state;
  struct fw_rawjson value;
  char out[16] = "untouched";
  struct fw_rawjson array = validated("[1]");
  struct fw_rawjson object = validated("{\"a\":1}");
  struct fw_rawjson string = validated("\"a\"");
  assert_int_equal(fw_rawjson_member(array, "a", &value), FW_EINVAL);
  assert_int_equal(fw_rawjson_member(string, "a", &value), FW_EINVAL);
  assert_int_equal(fw_rawjson_element(object, 0, &value), FW_EINVAL);
  assert_int_equal(fw_rawjson_element(validated("1"), 0, &value), FW_EINVAL);
  assert_int_equal(fw_rawjson_string(object, out, sizeof out), FW_EINVAL);
  assert_string_equal(out, "");
  assert_int_equal(fw_rawjson_string(validated("null"), out, sizeof out), FW_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(accepts_valid_json),
      cmocka_unit_test(rejects_invalid_json_with_offset_and_reason),
      cmocka_unit_test(caps_nesting_at_max_depth),
      cmocka_unit_test(spans_are_exact_bytes),
      cmocka_unit_test(finds_members_by_unescaped_name),
      cmocka_unit_test(last_duplicate_member_wins),
      cmocka_unit_test(finds_elements_by_index),
      cmocka_unit_test(iterates_members_in_order),
      cmocka_unit_test(unescapes_strings),
      cmocka_unit_test(refuses_strings_that_do_not_fit),
      cmocka_unit_test(refuses_values_of_the_wrong_type),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

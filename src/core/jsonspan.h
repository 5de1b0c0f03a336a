/* Spans of raw JSON text: finding a member's value as the bytes that were sent, so message data is
 * handed on verbatim instead of through a parse and re-serialisation (which would change numbers
 * and drop duplicate keys). These scanners only run over text a real parser (jansson) has already
 * accepted, so they need no error handling beyond never leaving [p, e). No I/O, no allocation
 * except to decode an escaped key. */
#ifndef SL_CORE_JSONSPAN_H
#define SL_CORE_JSONSPAN_H

/* p past any JSON white space (at most e). */
const char *sl__json_skip_ws(const char *p, const char *e);
/* p at a value: just past it (iterative, so hostile nesting cannot exhaust the stack). */
const char *sl__json_skip_value(const char *p, const char *e);
/* The value of member key of the object at p (white space allowed before it): 1 with its span
 * [*vs, *ve), else 0. The last one when a key repeats, as jansson keeps the last; escaped keys
 * ("d\u0061ta") are decoded before comparing. */
int sl__json_member(const char *p, const char *e, const char *key, const char **vs,
                    const char **ve);

#endif

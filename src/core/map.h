/* A small string-keyed hash map (key -> void *) shared by the context, the ACL and the store
 * engines. The map copies keys and never owns values: whoever removes or replaces a value passes
 * the function that releases it (or NULL to keep it). Open addressing with linear probing and
 * backward-shift deletion, so there are no tombstones and lookups stay short after many deletes.
 * The hash is not keyed: keys must not be chosen by anonymous callers in bulk (hash flooding). Not
 * thread-safe. */
#ifndef SLUICE_CORE_MAP_H
#define SLUICE_CORE_MAP_H

#include <stddef.h>

typedef struct sl__map sl__map;

/* Releases a value; NULL where a function of this type is taken means "leave the value alone". */
typedef void (*sl__map_free_fn)(void *value);
/* Visits one entry; a nonzero return stops the iteration and is returned by sl__map_each. The
 * visitor must not add or remove entries (it may change the value it is given in place). */
typedef int (*sl__map_iter_fn)(void *ud, const char *key, void *value);

/* An empty map in *out. SL_OK or SL_ENOMEM. */
int sl__map_new(sl__map **out);
/* Frees the map and its keys, passing every value to free_value (when not NULL). NULL m is a
 * no-op. */
void sl__map_free(sl__map *m, sl__map_free_fn free_value);
/* The value stored under key, or NULL. */
void *sl__map_get(const sl__map *m, const char *key);
/* Stores value under a copy of key. A value already stored under key is replaced and passed to
 * free_prev (when not NULL). SL_OK, or SL_ENOMEM with the map unchanged. */
int sl__map_put(sl__map *m, const char *key, void *value, sl__map_free_fn free_prev);
/* Removes key, passing its value to free_value (when not NULL). 1 when key was present, else 0. */
int sl__map_del(sl__map *m, const char *key, sl__map_free_fn free_value);
size_t sl__map_size(const sl__map *m);
/* Calls fn for every entry in unspecified order; returns the first nonzero fn result, else 0. */
int sl__map_each(const sl__map *m, sl__map_iter_fn fn, void *ud);

#endif

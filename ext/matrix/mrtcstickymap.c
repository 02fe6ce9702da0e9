/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* The MSC4354 sticky event map: one winner per (room, type, sender,
 * sticky key), newest unexpired wins. No I/O; time comes from a clock
 * function so tests drive expiry. */

#include "mrtcstickymap.h"
#include "mrtcmember.h"

#include <string.h>

struct _MrtcStickyMap
{
  MrtcClockFunc clock;
  gpointer clock_data;
  GHashTable *entries; /* composite key -> MrtcStickyEntry */
  /* (room, type, sender) -> set of the composite keys of its entries: bounds
   * the keys one sender can hold (MRTC_STICKY_MAX_KEYS_PER_SENDER). */
  GHashTable *by_sender;
  guint evicted;
};

gint64
mrtc_clock_real (gpointer user_data)
{
  return g_get_real_time () / 1000;
}

void
mrtc_sticky_entry_free (MrtcStickyEntry *entry)
{
  if (entry == NULL)
    return;
  g_free (entry->room_id);
  g_free (entry->type);
  g_free (entry->sender);
  g_free (entry->key);
  g_free (entry->event_id);
  if (entry->event != NULL)
    json_object_unref (entry->event);
  g_free (entry);
}

MrtcStickyMap *
mrtc_sticky_map_new (MrtcClockFunc clock, gpointer user_data)
{
  MrtcStickyMap *map = g_new0 (MrtcStickyMap, 1);

  map->clock = clock != NULL ? clock : mrtc_clock_real;
  map->clock_data = user_data;
  map->entries = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)mrtc_sticky_entry_free);
  map->by_sender = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_hash_table_unref);
  return map;
}

void
mrtc_sticky_map_free (MrtcStickyMap *map)
{
  if (map == NULL)
    return;
  g_hash_table_unref (map->entries);
  g_hash_table_unref (map->by_sender);
  g_free (map);
}

gint64
mrtc_sticky_map_now (MrtcStickyMap *map)
{
  return map->clock (map->clock_data);
}

/* Length-prefixed parts, so that no choice of strings collides. */
static gchar *
composite_key (const gchar *room_id, const gchar *type, const gchar *sender,
    const gchar *key)
{
  return g_strdup_printf ("%zu:%s%zu:%s%zu:%s%zu:%s", strlen (room_id), room_id,
      strlen (type), type, strlen (sender), sender, strlen (key), key);
}

static gchar *
sender_key (const MrtcStickyEntry *e)
{
  return composite_key (e->room_id, e->type, e->sender, "");
}

static void
index_add (MrtcStickyMap *map, const MrtcStickyEntry *e, const gchar *ckey)
{
  g_autofree gchar *skey = sender_key (e);
  GHashTable *set = g_hash_table_lookup (map->by_sender, skey);

  if (set == NULL) {
    set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_insert (map->by_sender, g_steal_pointer (&skey), set);
  }
  g_hash_table_add (set, g_strdup (ckey));
}

static void
index_remove (MrtcStickyMap *map, const MrtcStickyEntry *e, const gchar *ckey)
{
  g_autofree gchar *skey = sender_key (e);
  GHashTable *set = g_hash_table_lookup (map->by_sender, skey);

  if (set == NULL)
    return;
  g_hash_table_remove (set, ckey);
  if (g_hash_table_size (set) == 0)
    g_hash_table_remove (map->by_sender, skey);
}

/* When the sender of @e holds more keys than allowed, drops its oldest
 * entry (origin_server_ts, then event id): the newest memberships are the
 * ones that count, and a sender flooding keys only loses its own. */
static void
enforce_sender_limit (MrtcStickyMap *map, const MrtcStickyEntry *e)
{
  g_autofree gchar *skey = sender_key (e);
  GHashTable *set = g_hash_table_lookup (map->by_sender, skey);
  GHashTableIter iter;
  gpointer k;
  const gchar *oldest_key = NULL;
  const MrtcStickyEntry *oldest = NULL;

  if (set == NULL || g_hash_table_size (set) <= MRTC_STICKY_MAX_KEYS_PER_SENDER)
    return;
  g_hash_table_iter_init (&iter, set);
  while (g_hash_table_iter_next (&iter, &k, NULL)) {
    const MrtcStickyEntry *c = g_hash_table_lookup (map->entries, k);

    if (c == NULL)
      continue;
    if (oldest == NULL || c->origin_server_ts < oldest->origin_server_ts
        || (c->origin_server_ts == oldest->origin_server_ts
            && strcmp (c->event_id, oldest->event_id) < 0)) {
      oldest = c;
      oldest_key = k;
    }
  }
  if (oldest != NULL) {
    g_autofree gchar *victim = g_strdup (oldest_key);

    map->evicted++;
    g_info ("sticky map: %s holds more than %d keys, dropping %s (%u dropped "
            "so far)",
        oldest->sender, MRTC_STICKY_MAX_KEYS_PER_SENDER, oldest->event_id,
        map->evicted);
    g_hash_table_remove (set, victim);
    g_hash_table_remove (map->entries, victim);
  }
}

guint
mrtc_sticky_map_get_evicted (MrtcStickyMap *map)
{
  return map->evicted;
}

const gchar *
mrtc_sticky_content_key (JsonObject *content)
{
  const gchar *key = mrtc_json_get_string (content, "msc4354_sticky_key");

  return key != NULL ? key : mrtc_json_get_string (content, "sticky_key");
}

gint64
mrtc_sticky_event_expiry (JsonObject *event, gint64 now)
{
  JsonObject *sticky, *unsigned_;
  gint64 duration, ttl, ts = now, start;

  sticky = mrtc_json_get_object (event, "msc4354_sticky");
  if (sticky == NULL)
    sticky = mrtc_json_get_object (event, "sticky");
  if (sticky == NULL || !mrtc_json_get_int (sticky, "duration_ms", &duration)
      || duration < 0)
    return -1;
  duration = MIN (duration, MRTC_STICKY_MAX_DURATION_MS);

  unsigned_ = mrtc_json_get_object (event, "unsigned");
  if (mrtc_json_get_int (unsigned_, "msc4354_sticky_duration_ttl_ms", &ttl)
      || mrtc_json_get_int (unsigned_, "sticky_duration_ttl_ms", &ttl)) {
    if (ttl < 0)
      ttl = 0;
    return now + MIN (ttl, MRTC_STICKY_MAX_DURATION_MS);
  }

  mrtc_json_get_int (event, "origin_server_ts", &ts);
  start = MIN (now, ts);
  return start + duration;
}

MrtcStickyResult
mrtc_sticky_map_add (
    MrtcStickyMap *map, const gchar *room_id, JsonObject *event)
{
  const gchar *type, *sender, *event_id, *key;
  JsonObject *content;
  gint64 now, expires, ts = 0;
  g_autofree gchar *ckey = NULL;
  MrtcStickyEntry *current, *entry;

  g_return_val_if_fail (room_id != NULL, MRTC_STICKY_IGNORED_INVALID);

  type = mrtc_json_get_string (event, "type");
  sender = mrtc_json_get_string (event, "sender");
  event_id = mrtc_json_get_string (event, "event_id");
  content = mrtc_json_get_object (event, "content");
  key = mrtc_sticky_content_key (content);
  if (type == NULL || sender == NULL || sender[0] != '@' || event_id == NULL
      || key == NULL)
    return MRTC_STICKY_IGNORED_INVALID;
  if (json_object_has_member (event, "origin_server_ts")
      && !mrtc_json_get_int (event, "origin_server_ts", &ts))
    return MRTC_STICKY_IGNORED_INVALID;

  now = mrtc_sticky_map_now (map);
  expires = mrtc_sticky_event_expiry (event, now);
  if (expires < 0)
    return MRTC_STICKY_IGNORED_INVALID;
  if (expires <= now)
    return MRTC_STICKY_IGNORED_EXPIRED;

  ckey = composite_key (room_id, type, sender, key);
  current = g_hash_table_lookup (map->entries, ckey);
  if (current != NULL) {
    if (ts < current->origin_server_ts)
      return MRTC_STICKY_IGNORED_OLDER;
    if (ts == current->origin_server_ts
        && strcmp (event_id, current->event_id) <= 0)
      return MRTC_STICKY_IGNORED_OLDER;
  }

  entry = g_new0 (MrtcStickyEntry, 1);
  entry->room_id = g_strdup (room_id);
  entry->type = g_strdup (type);
  entry->sender = g_strdup (sender);
  entry->key = g_strdup (key);
  entry->event_id = g_strdup (event_id);
  entry->origin_server_ts = ts;
  entry->expires_at = expires;
  entry->event = json_object_ref (event);
  if (current == NULL)
    index_add (map, entry, ckey);
  g_hash_table_replace (map->entries, g_steal_pointer (&ckey), entry);
  if (current == NULL)
    enforce_sender_limit (map, entry);
  return current != NULL ? MRTC_STICKY_REPLACED : MRTC_STICKY_ADDED;
}

const MrtcStickyEntry *
mrtc_sticky_map_lookup (MrtcStickyMap *map, const gchar *room_id,
    const gchar *type, const gchar *sender, const gchar *key)
{
  g_autofree gchar *ckey = composite_key (room_id, type, sender, key);

  return g_hash_table_lookup (map->entries, ckey);
}

GPtrArray *
mrtc_sticky_map_expire (MrtcStickyMap *map)
{
  GPtrArray *removed
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_sticky_entry_free);
  gint64 now = mrtc_sticky_map_now (map);
  GHashTableIter iter;
  gpointer k, v;

  g_hash_table_iter_init (&iter, map->entries);
  while (g_hash_table_iter_next (&iter, &k, &v)) {
    MrtcStickyEntry *entry = v;

    if (entry->expires_at <= now) {
      index_remove (map, entry, k);
      g_hash_table_iter_steal (&iter);
      g_free (k);
      g_ptr_array_add (removed, entry);
    }
  }
  return removed;
}

gint64
mrtc_sticky_map_next_expiry (MrtcStickyMap *map)
{
  gint64 next = G_MAXINT64;
  GHashTableIter iter;
  gpointer v;

  g_hash_table_iter_init (&iter, map->entries);
  while (g_hash_table_iter_next (&iter, NULL, &v))
    next = MIN (next, ((MrtcStickyEntry *)v)->expires_at);
  return next;
}

gboolean
mrtc_sticky_map_remove_event (MrtcStickyMap *map, const gchar *event_id)
{
  GHashTableIter iter;
  gpointer v;

  gpointer k;

  g_hash_table_iter_init (&iter, map->entries);
  while (g_hash_table_iter_next (&iter, &k, &v)) {
    if (g_strcmp0 (((MrtcStickyEntry *)v)->event_id, event_id) == 0) {
      index_remove (map, v, k);
      g_hash_table_iter_remove (&iter);
      return TRUE;
    }
  }
  return FALSE;
}

const MrtcStickyEntry *
mrtc_sticky_map_find_event (MrtcStickyMap *map, const gchar *event_id)
{
  GHashTableIter iter;
  gpointer v;

  if (event_id == NULL)
    return NULL;
  g_hash_table_iter_init (&iter, map->entries);
  while (g_hash_table_iter_next (&iter, NULL, &v)) {
    if (g_strcmp0 (((MrtcStickyEntry *)v)->event_id, event_id) == 0)
      return v;
  }
  return NULL;
}

JsonObject *
mrtc_sticky_event_with_ttl (JsonObject *event, gint64 ttl_ms)
{
  JsonObject *copy = json_object_new ();
  JsonObject *unsigned_ = json_object_new ();
  JsonObject *old_unsigned = mrtc_json_get_object (event, "unsigned");
  g_autoptr (GList) names = json_object_get_members (event);
  GList *l;

  for (l = names; l != NULL; l = l->next) {
    if (strcmp (l->data, "unsigned") != 0)
      json_object_set_member (copy, l->data,
          json_node_ref (json_object_get_member (event, l->data)));
  }
  if (old_unsigned != NULL) {
    g_autoptr (GList) unames = json_object_get_members (old_unsigned);

    for (l = unames; l != NULL; l = l->next) {
      if (strcmp (l->data, "msc4354_sticky_duration_ttl_ms") != 0
          && strcmp (l->data, "sticky_duration_ttl_ms") != 0)
        json_object_set_member (unsigned_, l->data,
            json_node_ref (json_object_get_member (old_unsigned, l->data)));
    }
  }
  json_object_set_int_member (
      unsigned_, "msc4354_sticky_duration_ttl_ms", MAX (ttl_ms, 0));
  json_object_set_object_member (copy, "unsigned", unsigned_);
  return copy;
}

GPtrArray *
mrtc_sticky_map_entries (MrtcStickyMap *map)
{
  GPtrArray *out = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer v;

  g_hash_table_iter_init (&iter, map->entries);
  while (g_hash_table_iter_next (&iter, NULL, &v))
    g_ptr_array_add (out, v);
  return out;
}

guint
mrtc_sticky_map_size (MrtcStickyMap *map)
{
  return g_hash_table_size (map->entries);
}

/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_STICKY_MAP_H__
#define __MRTC_STICKY_MAP_H__

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Milliseconds since the Unix epoch; tests inject a fake clock. */
typedef gint64 (*MrtcClockFunc) (gpointer user_data);

gint64 mrtc_clock_real (gpointer user_data);

/**
 * MrtcStickyEntry:
 *
 * The current winner for one (room, type, sender, sticky key).
 */
typedef struct
{
  gchar *room_id;
  gchar *type;
  gchar *sender;
  gchar *key;
  gchar *event_id;
  gint64 origin_server_ts;
  gint64 expires_at; /* ms since the epoch */
  JsonObject *event; /* the whole client event */
} MrtcStickyEntry;

void mrtc_sticky_entry_free (MrtcStickyEntry *entry);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MrtcStickyEntry, mrtc_sticky_entry_free);

typedef enum
{
  MRTC_STICKY_ADDED,         /* new key */
  MRTC_STICKY_REPLACED,      /* newer event for a known key */
  MRTC_STICKY_IGNORED_OLDER, /* older than (or the same as) the current winner */
  MRTC_STICKY_IGNORED_EXPIRED, /* already expired when received */
  MRTC_STICKY_IGNORED_INVALID, /* not sticky, unkeyed or malformed */
} MrtcStickyResult;

typedef struct _MrtcStickyMap MrtcStickyMap;

MrtcStickyMap *mrtc_sticky_map_new (MrtcClockFunc clock, gpointer user_data);
void mrtc_sticky_map_free (MrtcStickyMap *map);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MrtcStickyMap, mrtc_sticky_map_free);

gint64 mrtc_sticky_map_now (MrtcStickyMap *map);

/* Expiry time of a sticky client event received at @now: from
 * unsigned.msc4354_sticky_duration_ttl_ms when present, else
 * min(now, origin_server_ts) + min(msc4354_sticky.duration_ms, 1 h).
 * Returns -1 when the event is not sticky. */
gint64 mrtc_sticky_event_expiry (JsonObject *event, gint64 now);

/* The sticky key of a content (msc4354_sticky_key, else sticky_key). */
const gchar *mrtc_sticky_content_key (JsonObject *content);

/* Most sticky keys one sender holds per (room, type): beyond, its oldest
 * entry is dropped (logged and counted, mrtc_sticky_map_get_evicted()). */
#define MRTC_STICKY_MAX_KEYS_PER_SENDER 16

/* Files a sticky event: newest origin_server_ts wins, ties go to the
 * lexicographically highest event id; expired events are ignored. A new key
 * beyond MRTC_STICKY_MAX_KEYS_PER_SENDER evicts the sender's oldest entry. */
MrtcStickyResult mrtc_sticky_map_add (
    MrtcStickyMap *map, const gchar *room_id, JsonObject *event);

const MrtcStickyEntry *mrtc_sticky_map_lookup (MrtcStickyMap *map,
    const gchar *room_id, const gchar *type, const gchar *sender,
    const gchar *key);

/* Removes the entries that have expired at the clock's now; returns them
 * (free with g_ptr_array_unref). */
GPtrArray *mrtc_sticky_map_expire (MrtcStickyMap *map);

/* Earliest expiry among the entries, G_MAXINT64 when empty. */
gint64 mrtc_sticky_map_next_expiry (MrtcStickyMap *map);

/* Removes the entry whose winner is @event_id (redaction). */
gboolean mrtc_sticky_map_remove_event (
    MrtcStickyMap *map, const gchar *event_id);

/* The entry whose winner is @event_id, or NULL. */
const MrtcStickyEntry *mrtc_sticky_map_find_event (
    MrtcStickyMap *map, const gchar *event_id);

/* Entries dropped so far by the per-sender limit. */
guint mrtc_sticky_map_get_evicted (MrtcStickyMap *map);

/* A copy of the sticky client event @event whose
 * unsigned.msc4354_sticky_duration_ttl_ms is @ttl_ms (the time it has left):
 * feeding a stored event again must not extend its life. */
JsonObject *mrtc_sticky_event_with_ttl (JsonObject *event, gint64 ttl_ms);

/* All current entries (borrowed pointers, valid until the map changes). */
GPtrArray *mrtc_sticky_map_entries (MrtcStickyMap *map);
guint mrtc_sticky_map_size (MrtcStickyMap *map);

G_END_DECLS

#endif /* __MRTC_STICKY_MAP_H__ */

/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Members of one MatrixRTC slot, computed from room events. No I/O. */

#include "mrtccallstate.h"

#include <string.h>

struct _MrtcCallState
{
  gchar *room_id;
  gchar *slot_id;
  MrtcClockFunc clock;
  gpointer clock_data;

  GHashTable *memberships;      /* user id -> "join"/"leave"/... */
  GHashTable *legacy;           /* state key -> joined MrtcMember */
  GHashTable *legacy_by_sender; /* sender -> set of its state keys */
  guint legacy_evicted;
  MrtcStickyMap *sticky;
  GHashTable *sticky_parsed; /* event id -> parsed MrtcMember (cache) */
  /* The slot as the unstable and the stable state event say (UNKNOWN when
   * absent), in our reading and in js-sdk 43's; the unstable event wins. */
  MrtcSlotStatus slot_status[2];
  MrtcSlotStatus slot_status_js[2];
  gchar *slot_event_id[2];
  JsonObject *power_levels;
  GPtrArray *creators; /* room v12+: creators have infinite power */
  gchar *room_version;
  gboolean encrypted;
  guint dropped;

  GHashTable *members;         /* member key -> MrtcMember (last update) */
  GPtrArray *member_list;      /* the same, by created_ts */
  GHashTable *pending_reasons; /* member key -> reason for the next LEFT */
};

void
mrtc_member_change_free (MrtcMemberChange *change)
{
  if (change == NULL)
    return;
  mrtc_member_unref (change->member);
  g_free (change->reason);
  g_free (change);
}

MrtcCallState *
mrtc_call_state_new (const gchar *room_id, const gchar *slot_id,
    MrtcClockFunc clock, gpointer clock_data)
{
  MrtcCallState *state = g_new0 (MrtcCallState, 1);

  state->room_id = g_strdup (room_id);
  state->slot_id = g_strdup (slot_id != NULL ? slot_id : MRTC_DEFAULT_SLOT_ID);
  state->clock = clock != NULL ? clock : mrtc_clock_real;
  state->clock_data = clock_data;
  state->memberships
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  state->legacy = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)mrtc_member_unref);
  state->legacy_by_sender = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_hash_table_unref);
  state->sticky = mrtc_sticky_map_new (state->clock, clock_data);
  state->sticky_parsed = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)mrtc_member_unref);
  state->slot_status[0] = state->slot_status[1] = MRTC_SLOT_UNKNOWN;
  state->slot_status_js[0] = state->slot_status_js[1] = MRTC_SLOT_UNKNOWN;
  state->creators = g_ptr_array_new_with_free_func (g_free);
  state->members = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)mrtc_member_unref);
  state->member_list
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_member_unref);
  state->pending_reasons
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return state;
}

void
mrtc_call_state_free (MrtcCallState *state)
{
  if (state == NULL)
    return;
  g_free (state->room_id);
  g_free (state->slot_id);
  g_hash_table_unref (state->memberships);
  g_hash_table_unref (state->legacy);
  g_hash_table_unref (state->legacy_by_sender);
  mrtc_sticky_map_free (state->sticky);
  g_hash_table_unref (state->sticky_parsed);
  g_free (state->slot_event_id[0]);
  g_free (state->slot_event_id[1]);
  if (state->power_levels != NULL)
    json_object_unref (state->power_levels);
  g_ptr_array_unref (state->creators);
  g_free (state->room_version);
  g_hash_table_unref (state->members);
  g_ptr_array_unref (state->member_list);
  g_hash_table_unref (state->pending_reasons);
  g_free (state);
}

static gboolean
is_sticky_member_type (const gchar *type)
{
  return strcmp (type, MRTC_EVENT_RTC_MEMBER) == 0
         || strcmp (type, MRTC_EVENT_RTC_MEMBER_STABLE) == 0;
}

static void
drop (MrtcCallState *state, const gchar *what, const GError *error)
{
  state->dropped++;
  g_info ("room %s: dropped %s: %s (%u dropped so far)", state->room_id, what,
      error != NULL ? error->message : "malformed", state->dropped);
}

/* Legacy entries, indexed by sender so that one sender's keys are bounded
 * (MRTC_CALL_STATE_MAX_LEGACY_PER_SENDER). */

static void
legacy_remove (MrtcCallState *state, const gchar *state_key)
{
  MrtcMember *old = g_hash_table_lookup (state->legacy, state_key);
  GHashTable *set;

  if (old == NULL)
    return;
  set = g_hash_table_lookup (state->legacy_by_sender, old->sender);
  if (set != NULL) {
    g_hash_table_remove (set, state_key);
    if (g_hash_table_size (set) == 0)
      g_hash_table_remove (state->legacy_by_sender, old->sender);
  }
  g_hash_table_remove (state->legacy, state_key);
}

static void
legacy_insert (MrtcCallState *state, const gchar *state_key, MrtcMember *m)
{
  GHashTable *set;
  GHashTableIter iter;
  gpointer k;
  const gchar *oldest_key = NULL;
  MrtcMember *oldest = NULL;

  legacy_remove (state, state_key);
  g_hash_table_replace (state->legacy, g_strdup (state_key), m);
  set = g_hash_table_lookup (state->legacy_by_sender, m->sender);
  if (set == NULL) {
    set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_insert (state->legacy_by_sender, g_strdup (m->sender), set);
  }
  g_hash_table_add (set, g_strdup (state_key));
  if (g_hash_table_size (set) <= MRTC_CALL_STATE_MAX_LEGACY_PER_SENDER)
    return;
  /* Too many: the oldest membership of that sender goes. */
  g_hash_table_iter_init (&iter, set);
  while (g_hash_table_iter_next (&iter, &k, NULL)) {
    MrtcMember *c = g_hash_table_lookup (state->legacy, k);

    if (c != NULL && (oldest == NULL || c->created_ts < oldest->created_ts)) {
      oldest = c;
      oldest_key = k;
    }
  }
  if (oldest_key != NULL) {
    g_autofree gchar *victim = g_strdup (oldest_key);

    state->legacy_evicted++;
    drop (state, "legacy membership beyond the per-sender limit", NULL);
    legacy_remove (state, victim);
  }
}

static void
set_slot (MrtcCallState *state, guint which, JsonObject *content,
    const gchar *event_id)
{
  state->slot_status[which] = mrtc_slot_parse (content, state->slot_id);
  state->slot_status_js[which]
      = mrtc_slot_parse_jssdk (content, state->slot_id);
  g_free (state->slot_event_id[which]);
  state->slot_event_id[which] = g_strdup (event_id);
}

static gboolean
handle_state_event (MrtcCallState *state, JsonObject *event, const gchar *type,
    const gchar *state_key, JsonObject *content)
{
  if (strcmp (type, "m.room.member") == 0) {
    const gchar *membership = mrtc_json_get_string (content, "membership");

    if (membership == NULL) {
      drop (state, "m.room.member without membership", NULL);
      return FALSE;
    }
    g_hash_table_replace (
        state->memberships, g_strdup (state_key), g_strdup (membership));
    return TRUE;
  }
  if (strcmp (type, MRTC_EVENT_RTC_SLOT) == 0
      || strcmp (type, MRTC_EVENT_RTC_SLOT_STABLE) == 0) {
    if (strcmp (state_key, state->slot_id) != 0)
      return FALSE;
    set_slot (state, strcmp (type, MRTC_EVENT_RTC_SLOT) == 0 ? 0 : 1, content,
        mrtc_json_get_string (event, "event_id"));
    return TRUE;
  }
  if (strcmp (type, MRTC_EVENT_LEGACY_MEMBER) == 0) {
    g_autoptr (GError) error = NULL;
    g_autoptr (MrtcMember) m
        = mrtc_member_parse_event (event, state->room_id, &error);

    if (m == NULL) {
      drop (state, "legacy member event", error);
      /* The state key no longer holds a valid membership. */
      legacy_remove (state, state_key);
      return TRUE;
    }
    if (m->joined)
      legacy_insert (state, state_key, g_steal_pointer (&m));
    else
      legacy_remove (state, state_key);
    return TRUE;
  }
  if (strcmp (type, "m.room.power_levels") == 0) {
    if (state->power_levels != NULL)
      json_object_unref (state->power_levels);
    state->power_levels = json_object_ref (content);
    return TRUE;
  }
  if (strcmp (type, "m.room.encryption") == 0) {
    state->encrypted = mrtc_json_get_string (content, "algorithm") != NULL;
    return TRUE;
  }
  if (strcmp (type, "m.room.create") == 0) {
    const gchar *version = mrtc_json_get_string (content, "room_version");
    const gchar *sender = mrtc_json_get_string (event, "sender");
    JsonArray *more = mrtc_json_get_array (content, "additional_creators");
    guint i;

    g_free (state->room_version);
    state->room_version = g_strdup (version != NULL ? version : "1");
    g_ptr_array_set_size (state->creators, 0);
    if (sender != NULL)
      g_ptr_array_add (state->creators, g_strdup (sender));
    for (i = 0; more != NULL && i < json_array_get_length (more); i++) {
      JsonNode *n = json_array_get_element (more, i);

      if (JSON_NODE_HOLDS_VALUE (n)
          && json_node_get_value_type (n) == G_TYPE_STRING)
        g_ptr_array_add (state->creators, g_strdup (json_node_get_string (n)));
    }
    return TRUE;
  }
  return FALSE;
}

/* A redacted event's content becomes {} (as js-sdk reads it): a legacy
 * membership ends, a slot closes, a sticky entry is dropped (the map keeps
 * no history to fall back to). */
static gboolean
handle_redaction (MrtcCallState *state, const gchar *redacts)
{
  GHashTableIter iter;
  gpointer k, v;
  guint i;

  for (i = 0; i < 2; i++) {
    if (g_strcmp0 (state->slot_event_id[i], redacts) == 0) {
      g_autoptr (JsonObject) empty = json_object_new ();

      set_slot (state, i, empty, redacts);
      return TRUE;
    }
  }
  g_hash_table_iter_init (&iter, state->legacy);
  while (g_hash_table_iter_next (&iter, &k, &v)) {
    if (g_strcmp0 (((MrtcMember *)v)->event_id, redacts) == 0) {
      g_autofree gchar *key = g_strdup (k);

      legacy_remove (state, key);
      return TRUE;
    }
  }
  return mrtc_sticky_map_remove_event (state->sticky, redacts);
}

gboolean
mrtc_call_state_handle_event (MrtcCallState *state, JsonObject *event)
{
  const gchar *type, *state_key;
  JsonObject *content;

  g_return_val_if_fail (state != NULL, FALSE);
  if (event == NULL) {
    drop (state, "event", NULL);
    return FALSE;
  }
  type = mrtc_json_get_string (event, "type");
  content = mrtc_json_get_object (event, "content");
  if (type == NULL || content == NULL) {
    drop (state, "event without type or content", NULL);
    return FALSE;
  }
  state_key = mrtc_json_get_string (event, "state_key");
  if (state_key != NULL)
    return handle_state_event (state, event, type, state_key, content);

  if (is_sticky_member_type (type)) {
    g_autoptr (GError) error = NULL;
    g_autoptr (MrtcMember) m = NULL;
    MrtcStickyResult res;

    if (mrtc_sticky_event_expiry (event, state->clock (state->clock_data)) < 0)
      return FALSE; /* not sticky: not a membership */
    m = mrtc_member_parse_event (event, state->room_id, &error);
    if (m == NULL)
      drop (state, "sticky member event", error);
    /* Even a malformed event supersedes its key: whatever is not a valid
     * join for a sticky key means that member is gone. */
    res = mrtc_sticky_map_add (state->sticky, state->room_id, event);
    if (res == MRTC_STICKY_IGNORED_INVALID && m != NULL)
      drop (state, "sticky member event without sticky metadata", NULL);
    return res == MRTC_STICKY_ADDED || res == MRTC_STICKY_REPLACED;
  }

  if (strcmp (type, "m.room.redaction") == 0) {
    const gchar *redacts = mrtc_json_get_string (event, "redacts");

    if (redacts == NULL)
      redacts = mrtc_json_get_string (content, "redacts");
    if (redacts != NULL)
      return handle_redaction (state, redacts);
  }
  return FALSE;
}

static gint
compare_created (gconstpointer a, gconstpointer b)
{
  const MrtcMember *ma = *(MrtcMember *const *)a;
  const MrtcMember *mb = *(MrtcMember *const *)b;

  if (ma->created_ts != mb->created_ts)
    return ma->created_ts < mb->created_ts ? -1 : 1;
  return g_strcmp0 (ma->identity, mb->identity);
}

static gboolean
sender_joined (MrtcCallState *state, const gchar *user_id)
{
  return g_strcmp0 (g_hash_table_lookup (state->memberships, user_id), "join")
         == 0;
}

static gchar *
sticky_member_key (const gchar *sender, const gchar *key)
{
  return g_strdup_printf ("S%zu:%s%s", strlen (sender), sender, key);
}

typedef struct
{
  gchar *key; /* member key */
  MrtcMember *member;
} KeyedMember;

static gint
compare_keyed (gconstpointer a, gconstpointer b)
{
  const KeyedMember *ka = a, *kb = b;
  gint r = compare_created (&ka->member, &kb->member);

  return r != 0 ? r : strcmp (ka->key, kb->key);
}

GPtrArray *
mrtc_call_state_update (MrtcCallState *state)
{
  GPtrArray *changes = g_ptr_array_new_with_free_func (
      (GDestroyNotify)mrtc_member_change_free);
  g_autoptr (GHashTable) next = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)mrtc_member_unref);
  g_autoptr (GHashTable) sticky_keys
      = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) parsed = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)mrtc_member_unref);
  g_autoptr (GPtrArray) expired = NULL;
  g_autoptr (GPtrArray) entries = NULL;
  g_autoptr (GArray) order = g_array_new (FALSE, FALSE, sizeof (KeyedMember));
  GHashTable *reasons = state->pending_reasons;
  gint64 now = state->clock (state->clock_data);
  /* Sticky members are hidden while js-sdk 43 reads the slot as closed
   * (the seed form included), as js-sdk does. */
  gboolean slot_closed
      = mrtc_call_state_get_slot_status_jssdk (state) == MRTC_SLOT_CLOSED;
  GHashTableIter iter;
  gpointer k, v;
  guint i;

  /* Sticky entries that expired. */
  expired = mrtc_sticky_map_expire (state->sticky);
  for (i = 0; i < expired->len; i++) {
    MrtcStickyEntry *e = g_ptr_array_index (expired, i);

    g_hash_table_replace (
        reasons, sticky_member_key (e->sender, e->key), g_strdup ("expired"));
  }

  /* Sticky members; each event is parsed once (cache by event id). */
  entries = mrtc_sticky_map_entries (state->sticky);
  for (i = 0; i < entries->len; i++) {
    MrtcStickyEntry *e = g_ptr_array_index (entries, i);
    MrtcMember *m;
    gchar *mkey;

    if (!is_sticky_member_type (e->type))
      continue;
    if (slot_closed) {
      g_hash_table_replace (reasons, sticky_member_key (e->sender, e->key),
          g_strdup ("slot_closed"));
      continue;
    }
    g_hash_table_add (sticky_keys, e->key);
    m = g_hash_table_lookup (state->sticky_parsed, e->event_id);
    if (m == NULL) {
      m = mrtc_member_parse_event (e->event, state->room_id, NULL);
      if (m != NULL)
        m->expires_ts = e->expires_at;
    } else {
      mrtc_member_ref (m);
    }
    mkey = sticky_member_key (e->sender, e->key);
    if (m != NULL)
      g_hash_table_replace (
          parsed, g_strdup (e->event_id), mrtc_member_ref (m));
    if (m == NULL || !m->joined
        || g_strcmp0 (m->slot_id, state->slot_id) != 0) {
      g_hash_table_replace (reasons, mkey,
          g_strdup (
              m != NULL && m->leave_reason != NULL ? m->leave_reason : "left"));
      if (m != NULL)
        mrtc_member_unref (m);
      continue;
    }
    if (!sender_joined (state, m->sender)) {
      g_hash_table_replace (reasons, mkey, g_strdup ("not_in_room"));
      mrtc_member_unref (m);
      continue;
    }
    g_hash_table_replace (next, mkey, m);
  }
  g_hash_table_unref (state->sticky_parsed);
  state->sticky_parsed = g_steal_pointer (&parsed);

  /* Legacy members. */
  g_hash_table_iter_init (&iter, state->legacy);
  while (g_hash_table_iter_next (&iter, &k, &v)) {
    MrtcMember *m = v;
    gchar *mkey;

    if (g_hash_table_contains (sticky_keys, k)
        || g_strcmp0 (m->slot_id, state->slot_id) != 0)
      continue;
    mkey = g_strdup_printf ("L%s", (const gchar *)k);
    if (m->expires_ts <= now) {
      g_hash_table_replace (reasons, mkey, g_strdup ("expired"));
      continue;
    }
    if (!sender_joined (state, m->sender)) {
      g_hash_table_replace (reasons, mkey, g_strdup ("not_in_room"));
      continue;
    }
    g_hash_table_replace (next, mkey, mrtc_member_ref (m));
  }

  /* Diff: leaves first, then joins and updates in join order. */
  g_hash_table_iter_init (&iter, state->members);
  while (g_hash_table_iter_next (&iter, &k, &v)) {
    if (!g_hash_table_contains (next, k)) {
      MrtcMemberChange *c = g_new0 (MrtcMemberChange, 1);
      const gchar *reason = g_hash_table_lookup (reasons, k);

      c->kind = MRTC_MEMBER_CHANGE_LEFT;
      c->member = mrtc_member_ref (v);
      c->reason = g_strdup (reason != NULL ? reason : "left");
      g_ptr_array_add (changes, c);
    }
  }
  g_hash_table_remove_all (reasons);

  /* The member keys travel with the members: linear, not a search each. */
  g_hash_table_iter_init (&iter, next);
  while (g_hash_table_iter_next (&iter, &k, &v)) {
    KeyedMember km = { k, v };

    g_array_append_val (order, km);
  }
  g_array_sort (order, compare_keyed);
  g_ptr_array_set_size (state->member_list, 0);
  for (i = 0; i < order->len; i++) {
    KeyedMember *km = &g_array_index (order, KeyedMember, i);
    MrtcMember *old = g_hash_table_lookup (state->members, km->key);

    g_ptr_array_add (state->member_list, mrtc_member_ref (km->member));
    if (old == km->member)
      continue; /* the same parsed event */
    if (old == NULL || !mrtc_member_same_content (old, km->member)) {
      MrtcMemberChange *c = g_new0 (MrtcMemberChange, 1);

      c->kind = old == NULL ? MRTC_MEMBER_CHANGE_JOINED
                            : MRTC_MEMBER_CHANGE_UPDATED;
      c->member = mrtc_member_ref (km->member);
      g_ptr_array_add (changes, c);
    }
  }

  g_hash_table_unref (state->members);
  state->members = g_steal_pointer (&next);
  return changes;
}

gint64
mrtc_call_state_next_deadline (MrtcCallState *state)
{
  gint64 next = mrtc_sticky_map_next_expiry (state->sticky);
  gint64 now = state->clock (state->clock_data);
  GHashTableIter iter;
  gpointer v;

  /* Only memberships of our slot that are still to expire: an expired
   * legacy entry stays in the state until its key changes, and counting it
   * would ask for an update right away, again and again. */
  g_hash_table_iter_init (&iter, state->legacy);
  while (g_hash_table_iter_next (&iter, NULL, &v)) {
    MrtcMember *m = v;

    if (m->expires_ts > now && g_strcmp0 (m->slot_id, state->slot_id) == 0)
      next = MIN (next, m->expires_ts);
  }
  return next;
}

GPtrArray *
mrtc_call_state_get_members (MrtcCallState *state)
{
  return state->member_list;
}

MrtcMember *
mrtc_call_state_find_member (
    MrtcCallState *state, const gchar *user_id, const gchar *device_id)
{
  guint i;

  for (i = 0; i < state->member_list->len; i++) {
    MrtcMember *m = g_ptr_array_index (state->member_list, i);

    if (g_strcmp0 (m->user_id, user_id) == 0
        && g_strcmp0 (m->device_id, device_id) == 0)
      return m;
  }
  return NULL;
}

MrtcSlotStatus
mrtc_call_state_get_slot_status (MrtcCallState *state)
{
  return state->slot_status[0] != MRTC_SLOT_UNKNOWN ? state->slot_status[0]
                                                    : state->slot_status[1];
}

MrtcSlotStatus
mrtc_call_state_get_slot_status_jssdk (MrtcCallState *state)
{
  /* js-sdk 43 reads the unstable event only. */
  return state->slot_status_js[0];
}

guint
mrtc_call_state_get_evicted (MrtcCallState *state)
{
  return state->legacy_evicted + mrtc_sticky_map_get_evicted (state->sticky);
}

gboolean
mrtc_call_state_is_encrypted (MrtcCallState *state)
{
  return state->encrypted;
}

const gchar *
mrtc_call_state_get_room_version (MrtcCallState *state)
{
  return state->room_version;
}

const gchar *
mrtc_call_state_get_membership (MrtcCallState *state, const gchar *user_id)
{
  return g_hash_table_lookup (state->memberships, user_id);
}

static gint64
power_of (JsonObject *pl, const gchar *map, const gchar *name,
    const gchar *dflt_key, gint64 dflt)
{
  gint64 value;

  if (mrtc_json_get_int (mrtc_json_get_object (pl, map), name, &value))
    return value;
  if (mrtc_json_get_int (pl, dflt_key, &value))
    return value;
  return dflt;
}

gboolean
mrtc_call_state_can_send_state (
    MrtcCallState *state, const gchar *user_id, const gchar *event_type)
{
  guint i;

  /* Room versions with MSC4289 creators: they outrank everyone. */
  if (state->room_version != NULL
      && (g_str_equal (state->room_version, "12")
          || g_str_has_prefix (state->room_version, "org.matrix.hydra"))) {
    for (i = 0; i < state->creators->len; i++) {
      if (g_strcmp0 (g_ptr_array_index (state->creators, i), user_id) == 0)
        return TRUE;
    }
  }
  if (state->power_levels == NULL)
    return TRUE;
  return power_of (state->power_levels, "users", user_id, "users_default", 0)
         >= power_of (
             state->power_levels, "events", event_type, "state_default", 50);
}

guint
mrtc_call_state_get_dropped (MrtcCallState *state)
{
  return state->dropped;
}

const gchar *
mrtc_call_state_get_slot_id (MrtcCallState *state)
{
  return state->slot_id;
}

const gchar *
mrtc_call_state_get_room_id (MrtcCallState *state)
{
  return state->room_id;
}

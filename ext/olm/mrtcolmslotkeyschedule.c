/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/*
 * The slot-shared media key, I/O-free: the key event content, the slot's
 * reference to it, and the schedule of which key is current. Never logs key
 * bytes (only event ids and indices).
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mrtcolmslotkeyschedule.h"

#include <string.h>

const gchar *
mrtc_olm_slot_key_status_name (MrtcOlmSlotKeyStatus status)
{
  switch (status) {
    case MRTC_OLM_SLOT_KEY_STATUS_NO_KEY:
      return "no-key";
    case MRTC_OLM_SLOT_KEY_STATUS_WAITING:
      return "waiting";
    case MRTC_OLM_SLOT_KEY_STATUS_READY:
      return "ready";
    case MRTC_OLM_SLOT_KEY_STATUS_INVALID:
      return "invalid";
  }
  return "unknown";
}

/* ------------------------------------------------------------------------ */
/* Key event content */

/**
 * mrtc_olm_slot_key_content_parse:
 * @content: (nullable): the decrypted content of a key event
 * @key: (out): the key
 * @error: return location for an error
 *
 * Reads `{"key": "<base64>"}`: the key must be exactly 16 bytes in
 * standard base64, padded or not. Other members are ignored.
 *
 * Returns: %TRUE when @content holds such a key.
 */
gboolean
mrtc_olm_slot_key_content_parse (
    JsonObject *content, guint8 key[MRTC_OLM_SLOT_KEY_LEN], GError **error)
{
  const gchar *text;
  guint8 *bytes;
  gsize len = 0;

  memset (key, 0, MRTC_OLM_SLOT_KEY_LEN);
  if (content == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "shared key event: no content");
    return FALSE;
  }
  text = mrtc_olm_json_get_string (content, "key");
  if (text == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "shared key event: \"key\" is missing or not a string");
    return FALSE;
  }
  bytes = mrtc_olm_base64_decode_strict (text, FALSE, &len);
  if (bytes == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "shared key event: \"key\" is not standard base64");
    return FALSE;
  }
  if (len != MRTC_OLM_SLOT_KEY_LEN) {
    mrtc_olm_wipe (bytes, len);
    g_free (bytes);
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "shared key event: the key is %" G_GSIZE_FORMAT " bytes long, not %d",
        len, MRTC_OLM_SLOT_KEY_LEN);
    return FALSE;
  }
  memcpy (key, bytes, MRTC_OLM_SLOT_KEY_LEN);
  mrtc_olm_wipe (bytes, len);
  g_free (bytes);
  return TRUE;
}

/**
 * mrtc_olm_slot_key_content_build:
 * @key: 16 key bytes
 *
 * Returns: (transfer full): `{"key": "<unpadded base64>"}`.
 */
JsonObject *
mrtc_olm_slot_key_content_build (const guint8 key[MRTC_OLM_SLOT_KEY_LEN])
{
  JsonObject *content = json_object_new ();
  gchar *text = mrtc_olm_base64_encode_unpadded (key, MRTC_OLM_SLOT_KEY_LEN);

  json_object_set_string_member (content, "key", text);
  mrtc_olm_wipe_string (text); /* frees */
  return content;
}

/* ------------------------------------------------------------------------ */
/* The slot's reference */

/**
 * mrtc_olm_slot_key_event_id_is_valid:
 * @event_id: (nullable): a text
 *
 * Returns: whether @event_id looks like an event id: `$` then 1 to 254
 * printable ASCII characters, no space.
 */
gboolean
mrtc_olm_slot_key_event_id_is_valid (const gchar *event_id)
{
  gsize i;

  if (event_id == NULL || event_id[0] != '$')
    return FALSE;
  for (i = 1; event_id[i] != '\0'; i++) {
    if (i >= 255 || (guchar)event_id[i] <= 0x20 || (guchar)event_id[i] >= 0x7f)
      return FALSE;
  }
  return i > 1;
}

/**
 * mrtc_olm_slot_key_reference_parse:
 * @slot_content: (nullable): the content of a slot state event
 * @event_id: (out) (transfer full) (nullable): the key event named, or
 *   %NULL
 * @error: return location for an error
 *
 * Reads `application["m.shared_key_event"]`.
 *
 * Returns: %TRUE when the slot names a valid event id or none; %FALSE when
 *   the application or the reference is malformed.
 */
gboolean
mrtc_olm_slot_key_reference_parse (
    JsonObject *slot_content, gchar **event_id, GError **error)
{
  JsonNode *app, *ref;

  *event_id = NULL;
  if (slot_content == NULL
      || !json_object_has_member (slot_content, "application"))
    return TRUE;
  app = json_object_get_member (slot_content, "application");
  if (!JSON_NODE_HOLDS_OBJECT (app)) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "slot: \"application\" is not an object");
    return FALSE;
  }
  ref = json_object_get_member (
      json_node_get_object (app), MRTC_OLM_SLOT_KEY_REFERENCE);
  if (ref == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (ref)
      || json_node_get_value_type (ref) != G_TYPE_STRING
      || !mrtc_olm_slot_key_event_id_is_valid (json_node_get_string (ref))) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "slot: application[\"" MRTC_OLM_SLOT_KEY_REFERENCE
        "\"] is not an event id");
    return FALSE;
  }
  *event_id = g_strdup (json_node_get_string (ref));
  return TRUE;
}

/**
 * mrtc_olm_slot_key_reference_set:
 * @slot_content: the content of the current slot state event
 * @event_id: the key event to name
 * @error: return location for an error
 *
 * Returns: (transfer full) (nullable): a copy of @slot_content whose
 *   application names @event_id, or %NULL when the slot is not open (no
 *   application object, or a "status" other than "open").
 */
JsonObject *
mrtc_olm_slot_key_reference_set (
    JsonObject *slot_content, const gchar *event_id, GError **error)
{
  g_autoptr (JsonNode) copy = NULL;
  JsonObject *out, *app;
  JsonNode *node;

  if (!mrtc_olm_slot_key_event_id_is_valid (event_id)) {
    g_set_error (
        error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID, "not an event id");
    return NULL;
  }
  node = slot_content != NULL
             ? json_object_get_member (slot_content, "application")
             : NULL;
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "the slot has no application (it is not open): open it first");
    return NULL;
  }
  /* A closed slot ("status" other than "open") names no key. */
  if (json_object_has_member (slot_content, "status")
      && g_strcmp0 (mrtc_olm_json_get_string (slot_content, "status"), "open")
             != 0) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "the slot is closed: open it first");
    return NULL;
  }
  {
    /* A deep copy (json_node_copy() shares the object). */
    g_autofree gchar *text = mrtc_olm_json_object_to_string (slot_content);

    copy = json_from_string (text, NULL);
  }
  if (copy == NULL || !JSON_NODE_HOLDS_OBJECT (copy)) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
        "the slot content does not copy");
    return NULL;
  }
  out = json_node_dup_object (copy);
  app = json_object_get_object_member (out, "application");
  json_object_set_string_member (app, MRTC_OLM_SLOT_KEY_REFERENCE, event_id);
  return out;
}

guint
mrtc_olm_slot_key_index_for_event (const gchar *event_id)
{
  guint8 digest[32];
  gsize len = sizeof (digest);
  GChecksum *sum = g_checksum_new (G_CHECKSUM_SHA256);

  g_checksum_update (sum, (const guchar *)event_id, strlen (event_id));
  g_checksum_get_digest (sum, digest, &len);
  g_checksum_free (sum);
  return digest[0];
}

/* ------------------------------------------------------------------------ */
/* Power levels */

static JsonObject *
state_content (JsonArray *state, const gchar *type, const gchar *state_key)
{
  guint i;

  for (i = 0; state != NULL && i < json_array_get_length (state); i++) {
    JsonNode *n = json_array_get_element (state, i);
    JsonObject *ev;

    if (!JSON_NODE_HOLDS_OBJECT (n))
      continue;
    ev = json_node_get_object (n);
    if (g_strcmp0 (mrtc_olm_json_get_string (ev, "type"), type) == 0
        && g_strcmp0 (mrtc_olm_json_get_string (ev, "state_key"), state_key)
               == 0)
      return mrtc_olm_json_get_object (ev, "content");
  }
  return NULL;
}

static const gchar *
state_sender (JsonArray *state, const gchar *type)
{
  guint i;

  for (i = 0; state != NULL && i < json_array_get_length (state); i++) {
    JsonNode *n = json_array_get_element (state, i);

    if (JSON_NODE_HOLDS_OBJECT (n)
        && g_strcmp0 (
               mrtc_olm_json_get_string (json_node_get_object (n), "type"),
               type)
               == 0)
      return mrtc_olm_json_get_string (json_node_get_object (n), "sender");
  }
  return NULL;
}

static gint64
power_of (JsonObject *pl, const gchar *map, const gchar *name,
    const gchar *dflt_key, gint64 dflt)
{
  JsonObject *m = mrtc_olm_json_get_object (pl, map);
  gint64 value;

  if (m != NULL && json_object_has_member (m, name)
      && mrtc_olm_json_node_get_safe_int (
          json_object_get_member (m, name), &value))
    return value;
  if (pl != NULL && json_object_has_member (pl, dflt_key)
      && mrtc_olm_json_node_get_safe_int (
          json_object_get_member (pl, dflt_key), &value))
    return value;
  return dflt;
}

/**
 * mrtc_olm_slot_key_can_send_state:
 * @room_state: the room's state events
 * @user_id: a user
 * @event_type: a state event type
 *
 * The power level rule of the spec (and of room versions 12 and
 * org.matrix.hydra.*, whose creators outrank everyone).
 *
 * Returns: whether @user_id may send state events of @event_type.
 */
gboolean
mrtc_olm_slot_key_can_send_state (
    JsonArray *room_state, const gchar *user_id, const gchar *event_type)
{
  JsonObject *create = state_content (room_state, "m.room.create", "");
  JsonObject *pl = state_content (room_state, "m.room.power_levels", "");
  const gchar *version = mrtc_olm_json_get_string (create, "room_version");
  const gchar *creator = state_sender (room_state, "m.room.create");

  if (version != NULL
      && (g_str_equal (version, "12")
          || g_str_has_prefix (version, "org.matrix.hydra"))) {
    JsonNode *extra = create != NULL ? json_object_get_member (
                          create, "additional_creators")
                                     : NULL;

    if (g_strcmp0 (creator, user_id) == 0)
      return TRUE;
    if (extra != NULL && JSON_NODE_HOLDS_ARRAY (extra)) {
      JsonArray *a = json_node_get_array (extra);
      guint i;

      for (i = 0; i < json_array_get_length (a); i++) {
        JsonNode *n = json_array_get_element (a, i);

        if (JSON_NODE_HOLDS_VALUE (n)
            && json_node_get_value_type (n) == G_TYPE_STRING
            && g_strcmp0 (json_node_get_string (n), user_id) == 0)
          return TRUE;
      }
    }
  }
  if (pl == NULL) {
    /* No power levels: the creator has 100, everyone else 0, state events
     * need 0... except that the spec gives the creator alone the room. */
    return creator == NULL || g_strcmp0 (creator, user_id) == 0;
  }
  return power_of (pl, "users", user_id, "users_default", 0)
         >= power_of (pl, "events", event_type, "state_default", 50);
}

/* ------------------------------------------------------------------------ */
/* Schedule */

typedef struct
{
  gchar *event_id;
  guint index;
  guint8 key[MRTC_OLM_SLOT_KEY_LEN];
  gint64 expires; /* previous key only */
} SlotKey;

typedef struct
{
  gboolean present;
  JsonObject *content;
  gchar *reference;
  gchar *error; /* malformed reference */
} SlotState;

struct _MrtcOlmSlotKeySchedule
{
  gchar *slot_id;
  MrtcOlmClockFunc clock;
  gpointer clock_data;
  gint64 grace_ms;
  gint64 request_initial_ms;
  gint64 request_max_ms;

  SlotState slot[2]; /* unstable, stable */
  GHashTable *known; /* event id -> SlotKey */
  GQueue known_order;
  GHashTable *rejected; /* event id -> reason */

  SlotKey *current;
  SlotKey *previous;

  MrtcOlmSlotKeyStatus status;
  gchar *status_event_id;
  gchar *status_message;

  gchar *request_event_id;
  gint64 next_request;
  gint64 request_interval;
  guint requests;

  GQueue changes;
};

static void
slot_key_free (SlotKey *k)
{
  if (k == NULL)
    return;
  mrtc_olm_wipe (k->key, sizeof (k->key));
  g_free (k->event_id);
  g_free (k);
}

static SlotKey *
slot_key_copy (const SlotKey *k)
{
  SlotKey *c = g_new0 (SlotKey, 1);

  c->event_id = g_strdup (k->event_id);
  c->index = k->index;
  memcpy (c->key, k->key, sizeof (c->key));
  return c;
}

void
mrtc_olm_slot_key_change_free (MrtcOlmSlotKeyChange *change)
{
  if (change == NULL)
    return;
  mrtc_olm_wipe (change->key, sizeof (change->key));
  g_free (change->event_id);
  g_free (change->message);
  g_free (change);
}

static gint64
now_ms (MrtcOlmSlotKeySchedule *s)
{
  return s->clock (s->clock_data);
}

static gint64
default_clock (gpointer data)
{
  return g_get_monotonic_time () / 1000;
}

/**
 * mrtc_olm_slot_key_schedule_new:
 * @slot_id: (nullable): the slot (NULL: m.call#ROOM)
 * @clock: (nullable): a monotonic clock in ms (NULL: the system's)
 * @clock_data: data for @clock
 *
 * Returns: (transfer full): a schedule with no slot and no key.
 */
MrtcOlmSlotKeySchedule *
mrtc_olm_slot_key_schedule_new (
    const gchar *slot_id, MrtcOlmClockFunc clock, gpointer clock_data)
{
  MrtcOlmSlotKeySchedule *s = g_new0 (MrtcOlmSlotKeySchedule, 1);

  s->slot_id = g_strdup (slot_id != NULL ? slot_id : "m.call#ROOM");
  s->clock = clock != NULL ? clock : default_clock;
  s->clock_data = clock_data;
  s->grace_ms = MRTC_OLM_SLOT_KEY_DEFAULT_GRACE_MS;
  s->request_initial_ms = MRTC_OLM_SLOT_KEY_REQUEST_INITIAL_MS;
  s->request_max_ms = MRTC_OLM_SLOT_KEY_REQUEST_MAX_MS;
  s->known = g_hash_table_new_full (
      g_str_hash, g_str_equal, NULL, (GDestroyNotify)slot_key_free);
  g_queue_init (&s->known_order);
  s->rejected = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  s->status = MRTC_OLM_SLOT_KEY_STATUS_NO_KEY;
  g_queue_init (&s->changes);
  return s;
}

static void
slot_state_clear (SlotState *st)
{
  g_clear_pointer (&st->content, json_object_unref);
  g_clear_pointer (&st->reference, g_free);
  g_clear_pointer (&st->error, g_free);
  st->present = FALSE;
}

void
mrtc_olm_slot_key_schedule_free (MrtcOlmSlotKeySchedule *s)
{
  if (s == NULL)
    return;
  slot_state_clear (&s->slot[0]);
  slot_state_clear (&s->slot[1]);
  g_queue_clear (&s->known_order);
  g_hash_table_unref (s->known);
  g_hash_table_unref (s->rejected);
  slot_key_free (s->current);
  slot_key_free (s->previous);
  g_free (s->status_event_id);
  g_free (s->status_message);
  g_free (s->request_event_id);
  g_queue_clear_full (
      &s->changes, (GDestroyNotify)mrtc_olm_slot_key_change_free);
  g_free (s->slot_id);
  g_free (s);
}

void
mrtc_olm_slot_key_schedule_set_grace (
    MrtcOlmSlotKeySchedule *s, gint64 grace_ms)
{
  s->grace_ms = MAX (grace_ms, 0);
}

void
mrtc_olm_slot_key_schedule_set_request_backoff (
    MrtcOlmSlotKeySchedule *s, gint64 initial_ms, gint64 max_ms)
{
  s->request_initial_ms = MAX (initial_ms, 1);
  s->request_max_ms = MAX (max_ms, s->request_initial_ms);
}

/**
 * mrtc_olm_slot_key_schedule_handle_slot_event:
 * @s: the schedule
 * @event: a room event (state section, state API or timeline)
 *
 * Takes in a slot state event of our slot (either type; the unstable one
 * decides when there is one, as for membership). Later events replace
 * earlier ones: feed them in order.
 *
 * Returns: %TRUE when @event is a slot event of our slot.
 */
gboolean
mrtc_olm_slot_key_schedule_handle_slot_event (
    MrtcOlmSlotKeySchedule *s, JsonObject *event)
{
  const gchar *type = mrtc_olm_json_get_string (event, "type");
  const gchar *state_key = mrtc_olm_json_get_string (event, "state_key");
  JsonObject *content = mrtc_olm_json_get_object (event, "content");
  g_autoptr (GError) error = NULL;
  SlotState *st;

  if (state_key == NULL || g_strcmp0 (state_key, s->slot_id) != 0)
    return FALSE;
  if (g_strcmp0 (type, MRTC_OLM_SLOT_EVENT_TYPE) == 0)
    st = &s->slot[0];
  else if (g_strcmp0 (type, MRTC_OLM_SLOT_EVENT_TYPE_STABLE) == 0)
    st = &s->slot[1];
  else
    return FALSE;

  slot_state_clear (st);
  /* An empty content (a removed or redacted slot) counts as none. */
  if (content == NULL || json_object_get_size (content) == 0)
    return TRUE;
  st->present = TRUE;
  st->content = json_object_ref (content);
  if (!mrtc_olm_slot_key_reference_parse (content, &st->reference, &error))
    st->error = g_strdup (error->message);
  return TRUE;
}

static SlotState *
current_slot (MrtcOlmSlotKeySchedule *s)
{
  if (s->slot[0].present)
    return &s->slot[0];
  if (s->slot[1].present)
    return &s->slot[1];
  return NULL;
}

/**
 * mrtc_olm_slot_key_schedule_add_key:
 * @s: the schedule
 * @event_id: the key event
 * @key: its key (decrypted, or our own)
 * @key_len: must be 16
 * @error: return location for an error
 *
 * A key event's key is known. The first key learned for an event id stays
 * (a different one later is refused).
 */
gboolean
mrtc_olm_slot_key_schedule_add_key (MrtcOlmSlotKeySchedule *s,
    const gchar *event_id, const guint8 *key, gsize key_len, GError **error)
{
  SlotKey *k;

  if (!mrtc_olm_slot_key_event_id_is_valid (event_id)) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "shared key: not an event id");
    return FALSE;
  }
  if (key == NULL || key_len != MRTC_OLM_SLOT_KEY_LEN) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "shared key of %s: %" G_GSIZE_FORMAT " bytes, not %d", event_id,
        key_len, MRTC_OLM_SLOT_KEY_LEN);
    return FALSE;
  }
  k = g_hash_table_lookup (s->known, event_id);
  if (k != NULL) {
    if (memcmp (k->key, key, MRTC_OLM_SLOT_KEY_LEN) != 0) {
      g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
          "shared key of %s: a different key was already known", event_id);
      return FALSE;
    }
    return TRUE;
  }
  k = g_new0 (SlotKey, 1);
  k->event_id = g_strdup (event_id);
  k->index = mrtc_olm_slot_key_index_for_event (event_id);
  memcpy (k->key, key, MRTC_OLM_SLOT_KEY_LEN);
  g_hash_table_insert (s->known, k->event_id, k);
  g_queue_push_tail (&s->known_order, k->event_id);
  while (g_queue_get_length (&s->known_order) > MRTC_OLM_SLOT_KEY_MAX_KNOWN) {
    const gchar *old = g_queue_pop_head (&s->known_order);

    g_hash_table_remove (s->known, old);
  }
  return TRUE;
}

gboolean
mrtc_olm_slot_key_schedule_has_key (
    MrtcOlmSlotKeySchedule *s, const gchar *event_id)
{
  return event_id != NULL && g_hash_table_contains (s->known, event_id);
}

/**
 * mrtc_olm_slot_key_schedule_reject:
 * @s: the schedule
 * @event_id: a key event
 * @reason: why it can never give a key (not encrypted, malformed, ...)
 */
void
mrtc_olm_slot_key_schedule_reject (
    MrtcOlmSlotKeySchedule *s, const gchar *event_id, const gchar *reason)
{
  if (event_id == NULL || g_hash_table_contains (s->known, event_id))
    return;
  g_hash_table_replace (s->rejected, g_strdup (event_id), g_strdup (reason));
}

static void
push_change (
    MrtcOlmSlotKeySchedule *s, MrtcOlmSlotKeyChangeKind kind, const SlotKey *k)
{
  MrtcOlmSlotKeyChange *c = g_new0 (MrtcOlmSlotKeyChange, 1);

  c->kind = kind;
  c->index = k->index;
  c->event_id = g_strdup (k->event_id);
  if (kind == MRTC_OLM_SLOT_KEY_CHANGE_KEY)
    memcpy (c->key, k->key, sizeof (c->key));
  g_queue_push_tail (&s->changes, c);
}

static void
set_status (MrtcOlmSlotKeySchedule *s, MrtcOlmSlotKeyStatus status,
    const gchar *event_id, gchar *message /* owned */)
{
  MrtcOlmSlotKeyChange *c;

  if (status == s->status && g_strcmp0 (event_id, s->status_event_id) == 0
      && g_strcmp0 (message, s->status_message) == 0) {
    g_free (message);
    return;
  }
  s->status = status;
  g_free (s->status_event_id);
  s->status_event_id = g_strdup (event_id);
  g_free (s->status_message);
  s->status_message = message;
  c = g_new0 (MrtcOlmSlotKeyChange, 1);
  c->kind = MRTC_OLM_SLOT_KEY_CHANGE_STATUS;
  c->status = status;
  c->event_id = g_strdup (event_id);
  c->message = g_strdup (message);
  g_queue_push_tail (&s->changes, c);
}

/* The previous key leaves: tell unless its index is in use again. */
static void
drop_previous (MrtcOlmSlotKeySchedule *s)
{
  if (s->previous == NULL)
    return;
  if (s->current == NULL || s->current->index != s->previous->index)
    push_change (s, MRTC_OLM_SLOT_KEY_CHANGE_EXPIRED, s->previous);
  g_clear_pointer (&s->previous, slot_key_free);
}

static void
switch_to (MrtcOlmSlotKeySchedule *s, const SlotKey *next)
{
  SlotKey *old = s->current;

  /* A key older than the current one has no frames in flight any more. */
  if (s->previous != NULL) {
    if (s->previous->index != next->index
        && (old == NULL || s->previous->index != old->index))
      push_change (s, MRTC_OLM_SLOT_KEY_CHANGE_EXPIRED, s->previous);
    g_clear_pointer (&s->previous, slot_key_free);
  }
  if (old != NULL && old->index != next->index) {
    s->previous = old;
    s->previous->expires = now_ms (s) + s->grace_ms;
  } else {
    /* Same index (one chance in 256): the new key takes it over. */
    slot_key_free (old);
  }
  s->current = slot_key_copy (next);
  push_change (s, MRTC_OLM_SLOT_KEY_CHANGE_KEY, s->current);
}

/**
 * mrtc_olm_slot_key_schedule_update:
 * @s: the schedule
 *
 * Recomputes: the key the slot names becomes current once known (the
 * previous one stays for the grace period); expired keys go; the status
 * follows. Pop the changes after.
 */
void
mrtc_olm_slot_key_schedule_update (MrtcOlmSlotKeySchedule *s)
{
  SlotState *st = current_slot (s);
  const gchar *ref = st != NULL ? st->reference : NULL;
  gint64 now = now_ms (s);
  SlotKey *k;

  if (s->previous != NULL && now >= s->previous->expires)
    drop_previous (s);

  if (st != NULL && st->error != NULL) {
    set_status (s, MRTC_OLM_SLOT_KEY_STATUS_INVALID, NULL,
        g_strdup_printf ("slot %s: %s", s->slot_id, st->error));
  } else if (ref == NULL) {
    set_status (s, MRTC_OLM_SLOT_KEY_STATUS_NO_KEY, NULL,
        g_strdup_printf ("slot %s names no shared key event%s", s->slot_id,
            s->current != NULL ? " (the last key stays in use)" : ""));
  } else if (g_hash_table_contains (s->rejected, ref)) {
    set_status (s, MRTC_OLM_SLOT_KEY_STATUS_INVALID, ref,
        g_strdup_printf ("key event %s is unusable: %s", ref,
            (const gchar *)g_hash_table_lookup (s->rejected, ref)));
  } else if ((k = g_hash_table_lookup (s->known, ref)) != NULL) {
    if (s->current == NULL || g_strcmp0 (s->current->event_id, ref) != 0)
      switch_to (s, k);
    set_status (s, MRTC_OLM_SLOT_KEY_STATUS_READY, ref,
        g_strdup_printf ("using the key of %s at index %u", ref, k->index));
  } else {
    if (g_strcmp0 (s->request_event_id, ref) != 0) {
      g_free (s->request_event_id);
      s->request_event_id = g_strdup (ref);
      s->request_interval = s->request_initial_ms;
      s->next_request = now + s->request_initial_ms;
    }
    set_status (s, MRTC_OLM_SLOT_KEY_STATUS_WAITING, ref,
        g_strdup_printf ("waiting for key event %s", ref));
  }
  if (s->status != MRTC_OLM_SLOT_KEY_STATUS_WAITING)
    g_clear_pointer (&s->request_event_id, g_free);
}

MrtcOlmSlotKeyChange *
mrtc_olm_slot_key_schedule_pop_change (MrtcOlmSlotKeySchedule *s)
{
  return g_queue_pop_head (&s->changes);
}

/**
 * mrtc_olm_slot_key_schedule_next_deadline:
 * @s: the schedule
 *
 * Returns: when to call update() and take_request() again (clock ms), or
 *   -1 when nothing is due.
 */
gint64
mrtc_olm_slot_key_schedule_next_deadline (MrtcOlmSlotKeySchedule *s)
{
  gint64 deadline = -1;

  if (s->previous != NULL)
    deadline = s->previous->expires;
  if (s->request_event_id != NULL)
    deadline = deadline < 0 ? s->next_request : MIN (deadline, s->next_request);
  return deadline;
}

/**
 * mrtc_olm_slot_key_schedule_take_request:
 * @s: the schedule
 *
 * Returns: (transfer full) (nullable): the key event to request the key
 *   of now (the back-off doubles after each, up to its maximum), or %NULL.
 */
gchar *
mrtc_olm_slot_key_schedule_take_request (MrtcOlmSlotKeySchedule *s)
{
  gint64 now = now_ms (s);

  if (s->request_event_id == NULL || now < s->next_request)
    return NULL;
  s->next_request = now + s->request_interval;
  s->request_interval = MIN (s->request_interval * 2, s->request_max_ms);
  s->requests++;
  return g_strdup (s->request_event_id);
}

guint
mrtc_olm_slot_key_schedule_get_requests (MrtcOlmSlotKeySchedule *s)
{
  return s->requests;
}

/* The key event the current slot names, or NULL. */
const gchar *
mrtc_olm_slot_key_schedule_get_reference (MrtcOlmSlotKeySchedule *s)
{
  SlotState *st = current_slot (s);

  return st != NULL ? st->reference : NULL;
}

/* The type of the slot event that decides (NULL: no slot). */
const gchar *
mrtc_olm_slot_key_schedule_get_slot_type (MrtcOlmSlotKeySchedule *s)
{
  if (s->slot[0].present)
    return MRTC_OLM_SLOT_EVENT_TYPE;
  if (s->slot[1].present)
    return MRTC_OLM_SLOT_EVENT_TYPE_STABLE;
  return NULL;
}

/* Its content (borrowed), or NULL. */
JsonObject *
mrtc_olm_slot_key_schedule_get_slot_content (MrtcOlmSlotKeySchedule *s)
{
  SlotState *st = current_slot (s);

  return st != NULL ? st->content : NULL;
}

MrtcOlmSlotKeyStatus
mrtc_olm_slot_key_schedule_get_status (MrtcOlmSlotKeySchedule *s)
{
  return s->status;
}

/* The current key's event id (borrowed) and, when non-NULL, its index and
 * bytes; NULL when there is none. */
const gchar *
mrtc_olm_slot_key_schedule_get_current (
    MrtcOlmSlotKeySchedule *s, guint *index, guint8 key[MRTC_OLM_SLOT_KEY_LEN])
{
  if (s->current == NULL)
    return NULL;
  if (index != NULL)
    *index = s->current->index;
  if (key != NULL)
    memcpy (key, s->current->key, MRTC_OLM_SLOT_KEY_LEN);
  return s->current->event_id;
}

/* The current or previous (in its grace period) key at @index. */
gboolean
mrtc_olm_slot_key_schedule_lookup (
    MrtcOlmSlotKeySchedule *s, guint index, guint8 key[MRTC_OLM_SLOT_KEY_LEN])
{
  const SlotKey *k = NULL;

  if (s->current != NULL && s->current->index == index)
    k = s->current;
  else if (s->previous != NULL && s->previous->index == index
           && now_ms (s) < s->previous->expires)
    k = s->previous;
  if (k == NULL)
    return FALSE;
  if (key != NULL)
    memcpy (key, k->key, MRTC_OLM_SLOT_KEY_LEN);
  return TRUE;
}

/* Whether the current or previous key uses @index (a rotation picks an
 * event whose index differs). */
gboolean
mrtc_olm_slot_key_schedule_index_in_use (MrtcOlmSlotKeySchedule *s, guint index)
{
  return (s->current != NULL && s->current->index == index)
         || (s->previous != NULL && s->previous->index == index);
}

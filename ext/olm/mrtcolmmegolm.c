/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/*
 * Megolm (m.megolm.v1.aes-sha2) for encrypted rooms: one outbound group
 * session per room, shared as `m.room_key` over Olm, and the inbound group
 * sessions received that way, with replay protection (a message index may
 * only ever belong to one event id and timestamp).
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mrtcolmprivate.h"

#include <string.h>

/* Spec defaults for m.room.encryption rotation_period_ms / _msgs. */
#define DEFAULT_ROTATION_PERIOD_MS G_GINT64_CONSTANT (604800000)
#define DEFAULT_ROTATION_MESSAGES 100
/* Upper bounds for what room state may ask (as matrix-rust-sdk clamps). */
#define MAX_ROTATION_PERIOD_MS DEFAULT_ROTATION_PERIOD_MS
#define MAX_ROTATION_MESSAGES 10000
/* Inbound sessions kept per sending device and in all (oldest dropped). */
#define MAX_INBOUND_PER_SENDER 256
#define MAX_INBOUND_SESSIONS 4096
/* Replay records kept per inbound session: older indexes are refused. */
#define MAX_SEEN_PER_SESSION 1024
/* Longest Megolm ciphertext accepted (base64 of a payload of at most
 * MRTC_OLM_MAX_PAYLOAD_LEN bytes plus the Megolm framing). */
#define MAX_MEGOLM_CIPHERTEXT_LEN (MRTC_OLM_MAX_PAYLOAD_LEN / 3 * 4 + 1024)

typedef struct
{
  gchar *room_id;
  OlmOutboundGroupSession *session;
  gchar *session_id;
  /* Real time in µs. */
  gint64 created;
  /* "user SEP device SEP curve25519" of the devices it was shared with */
  GHashTable *shared_with;
} MrtcOlmOutboundGroup;

typedef struct
{
  gchar *room_id;
  gchar *sender_key;
  gchar *sender_ed25519;
  gchar *sender_user;
  gchar *session_id;
  OlmInboundGroupSession *session;
  /* message index (decimal string) -> "event id SEP origin_server_ts" */
  GHashTable *seen;
  /* Highest message index whose record was pruned from @seen, or -1:
   * indexes up to it that are not in @seen cannot be checked (refused). */
  gint64 seen_floor;
  /* Real time in µs when the session was added. */
  gint64 added;
} MrtcOlmInboundGroup;

static void
outbound_group_free (gpointer data)
{
  MrtcOlmOutboundGroup *group = data;

  g_free (group->room_id);
  if (group->session != NULL) {
    olm_clear_outbound_group_session (group->session);
    g_free (group->session);
  }
  g_free (group->session_id);
  g_hash_table_unref (group->shared_with);
  g_free (group);
}

static void
inbound_group_free (gpointer data)
{
  MrtcOlmInboundGroup *group = data;

  g_free (group->room_id);
  g_free (group->sender_key);
  g_free (group->sender_ed25519);
  g_free (group->sender_user);
  g_free (group->session_id);
  if (group->session != NULL) {
    olm_clear_inbound_group_session (group->session);
    g_free (group->session);
  }
  g_hash_table_unref (group->seen);
  g_free (group);
}

static MrtcOlmInboundGroup *
inbound_group_new (void)
{
  MrtcOlmInboundGroup *group = g_new0 (MrtcOlmInboundGroup, 1);

  group->session = olm_inbound_group_session (
      g_malloc0 (olm_inbound_group_session_size ()));
  group->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  group->seen_floor = -1;
  group->added = g_get_real_time ();
  return group;
}

static MrtcOlmOutboundGroup *
outbound_group_new (const gchar *room_id)
{
  MrtcOlmOutboundGroup *group = g_new0 (MrtcOlmOutboundGroup, 1);

  group->room_id = g_strdup (room_id);
  group->session = olm_outbound_group_session (
      g_malloc0 (olm_outbound_group_session_size ()));
  group->shared_with
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return group;
}

static gchar *
inbound_key (
    const gchar *room_id, const gchar *sender_key, const gchar *session_id)
{
  return g_strconcat (
      room_id, MRTC_OLM_SEP, sender_key, MRTC_OLM_SEP, session_id, NULL);
}

static gchar *
shared_key (const MrtcOlmDevice *device)
{
  return g_strconcat (device->user_id, MRTC_OLM_SEP, device->device_id,
      MRTC_OLM_SEP, device->curve25519, NULL);
}

static gchar *
inbound_session_id (OlmInboundGroupSession *session)
{
  gsize len = olm_inbound_group_session_id_length (session);
  gchar *id = g_malloc0 (len + 1);

  if (olm_inbound_group_session_id (session, (guint8 *)id, len) == olm_error ())
    id[0] = '\0';
  return id;
}

static gchar *
outbound_session_id (OlmOutboundGroupSession *session)
{
  gsize len = olm_outbound_group_session_id_length (session);
  gchar *id = g_malloc0 (len + 1);

  if (olm_outbound_group_session_id (session, (guint8 *)id, len)
      == olm_error ())
    id[0] = '\0';
  return id;
}

void
mrtc_olm_megolm_init (MrtcOlmAccount *account)
{
  account->outbound_groups = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, outbound_group_free);
  account->inbound_groups = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, inbound_group_free);
  account->megolm_period_ms = DEFAULT_ROTATION_PERIOD_MS;
  account->megolm_max_messages = DEFAULT_ROTATION_MESSAGES;
}

/* ------------------------------------------------------------------------ */
/* Persistence */

void
mrtc_olm_megolm_save (MrtcOlmAccount *account, JsonBuilder *builder)
{
  GHashTableIter iter, seen_iter;
  gpointer key, value;

  json_builder_set_member_name (builder, "outbound_group_sessions");
  json_builder_begin_array (builder);
  g_hash_table_iter_init (&iter, account->outbound_groups);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    MrtcOlmOutboundGroup *group = value;
    gsize len = olm_pickle_outbound_group_session_length (group->session);
    guint8 *buffer = g_malloc (len);
    gchar *pickle;

    if (olm_pickle_outbound_group_session (group->session, account->pickle_key,
            account->pickle_key_len, buffer, len)
        == olm_error ()) {
      g_free (buffer);
      continue;
    }
    pickle = mrtc_olm_pickle_buffer_to_string (buffer, len);
    json_builder_begin_object (builder);
    json_builder_set_member_name (builder, "room_id");
    json_builder_add_string_value (builder, group->room_id);
    json_builder_set_member_name (builder, "created");
    json_builder_add_int_value (builder, group->created);
    json_builder_set_member_name (builder, "pickle");
    json_builder_add_string_value (builder, pickle);
    mrtc_olm_wipe_string (pickle);
    json_builder_set_member_name (builder, "shared_with");
    json_builder_begin_array (builder);
    g_hash_table_iter_init (&seen_iter, group->shared_with);
    while (g_hash_table_iter_next (&seen_iter, &key, NULL))
      json_builder_add_string_value (builder, key);
    json_builder_end_array (builder);
    json_builder_end_object (builder);
  }
  json_builder_end_array (builder);

  json_builder_set_member_name (builder, "inbound_group_sessions");
  json_builder_begin_array (builder);
  g_hash_table_iter_init (&iter, account->inbound_groups);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    MrtcOlmInboundGroup *group = value;
    gsize len = olm_pickle_inbound_group_session_length (group->session);
    guint8 *buffer = g_malloc (len);
    gchar *pickle;

    if (olm_pickle_inbound_group_session (group->session, account->pickle_key,
            account->pickle_key_len, buffer, len)
        == olm_error ()) {
      g_free (buffer);
      continue;
    }
    pickle = mrtc_olm_pickle_buffer_to_string (buffer, len);
    json_builder_begin_object (builder);
    json_builder_set_member_name (builder, "room_id");
    json_builder_add_string_value (builder, group->room_id);
    json_builder_set_member_name (builder, "sender_key");
    json_builder_add_string_value (builder, group->sender_key);
    json_builder_set_member_name (builder, "sender_ed25519");
    json_builder_add_string_value (builder, group->sender_ed25519);
    json_builder_set_member_name (builder, "sender_user");
    json_builder_add_string_value (builder, group->sender_user);
    json_builder_set_member_name (builder, "pickle");
    json_builder_add_string_value (builder, pickle);
    mrtc_olm_wipe_string (pickle);
    json_builder_set_member_name (builder, "seen");
    json_builder_begin_object (builder);
    g_hash_table_iter_init (&seen_iter, group->seen);
    while (g_hash_table_iter_next (&seen_iter, &key, &value)) {
      json_builder_set_member_name (builder, key);
      json_builder_add_string_value (builder, value);
    }
    json_builder_end_object (builder);
    json_builder_set_member_name (builder, "seen_floor");
    json_builder_add_int_value (builder, group->seen_floor);
    json_builder_set_member_name (builder, "added");
    json_builder_add_int_value (builder, group->added);
    json_builder_end_object (builder);
  }
  json_builder_end_array (builder);
}

static JsonArray *
get_array (JsonObject *object, const gchar *member)
{
  JsonNode *node = json_object_get_member (object, member);

  return node != NULL && JSON_NODE_HOLDS_ARRAY (node)
             ? json_node_get_array (node)
             : NULL;
}

gboolean
mrtc_olm_megolm_load (
    MrtcOlmAccount *account, JsonObject *store, GError **error)
{
  JsonArray *array;
  guint i, j;

  array = get_array (store, "outbound_group_sessions");
  for (i = 0; array != NULL && i < json_array_get_length (array); i++) {
    JsonObject *o = json_array_get_object_element (array, i);
    const gchar *room_id = mrtc_olm_json_get_string (o, "room_id");
    const gchar *pickle = mrtc_olm_json_get_string (o, "pickle");
    JsonArray *shared = get_array (o, "shared_with");
    MrtcOlmOutboundGroup *group;
    gchar *copy;

    if (room_id == NULL || pickle == NULL)
      goto malformed;
    group = outbound_group_new (room_id);
    copy = g_strdup (pickle);
    if (olm_unpickle_outbound_group_session (group->session,
            account->pickle_key, account->pickle_key_len, copy, strlen (copy))
        == olm_error ()) {
      mrtc_olm_wipe_string (copy);
      outbound_group_free (group);
      goto malformed;
    }
    mrtc_olm_wipe_string (copy);
    group->session_id = outbound_session_id (group->session);
    group->created = json_object_get_int_member_with_default (o, "created", 0);
    for (j = 0; shared != NULL && j < json_array_get_length (shared); j++) {
      const gchar *s = json_array_get_string_element (shared, j);

      if (s != NULL)
        g_hash_table_add (group->shared_with, g_strdup (s));
    }
    g_hash_table_replace (account->outbound_groups, g_strdup (room_id), group);
  }

  array = get_array (store, "inbound_group_sessions");
  for (i = 0; array != NULL && i < json_array_get_length (array); i++) {
    JsonObject *o = json_array_get_object_element (array, i);
    const gchar *pickle = mrtc_olm_json_get_string (o, "pickle");
    JsonObject *seen = mrtc_olm_json_get_object (o, "seen");
    MrtcOlmInboundGroup *group;
    GList *members, *l;
    gchar *copy;

    if (pickle == NULL || mrtc_olm_json_get_string (o, "room_id") == NULL
        || mrtc_olm_json_get_string (o, "sender_key") == NULL
        || mrtc_olm_json_get_string (o, "sender_user") == NULL)
      goto malformed;
    group = inbound_group_new ();
    copy = g_strdup (pickle);
    if (olm_unpickle_inbound_group_session (group->session, account->pickle_key,
            account->pickle_key_len, copy, strlen (copy))
        == olm_error ()) {
      mrtc_olm_wipe_string (copy);
      inbound_group_free (group);
      goto malformed;
    }
    mrtc_olm_wipe_string (copy);
    group->room_id = g_strdup (mrtc_olm_json_get_string (o, "room_id"));
    group->sender_key = g_strdup (mrtc_olm_json_get_string (o, "sender_key"));
    group->sender_ed25519
        = g_strdup (mrtc_olm_json_get_string (o, "sender_ed25519"));
    group->sender_user = g_strdup (mrtc_olm_json_get_string (o, "sender_user"));
    group->session_id = inbound_session_id (group->session);
    members = seen != NULL ? json_object_get_members (seen) : NULL;
    for (l = members; l != NULL; l = l->next) {
      const gchar *v = mrtc_olm_json_get_string (seen, l->data);

      if (v != NULL)
        g_hash_table_insert (group->seen, g_strdup (l->data), g_strdup (v));
    }
    g_list_free (members);
    group->seen_floor
        = json_object_get_int_member_with_default (o, "seen_floor", -1);
    group->added = json_object_get_int_member_with_default (o, "added", 0);
    g_hash_table_replace (account->inbound_groups,
        inbound_key (group->room_id, group->sender_key, group->session_id),
        group);
  }
  return TRUE;

malformed:
  g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
      "malformed Megolm session in the Olm store");
  return FALSE;
}

/* ------------------------------------------------------------------------ */
/* Outbound */

/**
 * mrtc_olm_account_set_megolm_rotation:
 * @account: the account
 * @period_ms: `rotation_period_ms` of the room's m.room.encryption
 * @max_messages: `rotation_period_msgs`
 *
 * Sets when an outbound group session is replaced (defaults: one week,
 * 100 messages). Values of 0 or less mean the default; larger values than
 * one week or 10000 messages are clamped to those.
 */
void
mrtc_olm_account_set_megolm_rotation (
    MrtcOlmAccount *account, gint64 period_ms, guint32 max_messages)
{
  account->megolm_period_ms = period_ms > 0
                                  ? MIN (period_ms, MAX_ROTATION_PERIOD_MS)
                                  : DEFAULT_ROTATION_PERIOD_MS;
  account->megolm_max_messages = max_messages > 0
                                     ? MIN (max_messages, MAX_ROTATION_MESSAGES)
                                     : DEFAULT_ROTATION_MESSAGES;
}

static gboolean
outbound_expired (MrtcOlmAccount *account, MrtcOlmOutboundGroup *group)
{
  /* In ms, so that nothing can overflow. */
  return olm_outbound_group_session_message_index (group->session)
             >= account->megolm_max_messages
         || (g_get_real_time () - group->created) / 1000
                >= account->megolm_period_ms;
}

/* Drops the oldest inbound sessions beyond the limits: per sending device
 * (@sender_key) and in all. Peers choose how many sessions (and in which
 * rooms) they share, so this keeps the state and the store bounded. */
static void
limit_inbound_groups (MrtcOlmAccount *account, const gchar *sender_key)
{
  for (;;) {
    GHashTableIter iter;
    gpointer key, value;
    gpointer oldest_sender_key = NULL, oldest_key = NULL;
    gint64 oldest_sender = G_MAXINT64, oldest = G_MAXINT64;
    guint from_sender = 0, total = 0;

    g_hash_table_iter_init (&iter, account->inbound_groups);
    while (g_hash_table_iter_next (&iter, &key, &value)) {
      MrtcOlmInboundGroup *group = value;

      total++;
      if (group->added < oldest) {
        oldest = group->added;
        oldest_key = key;
      }
      if (g_strcmp0 (group->sender_key, sender_key) == 0) {
        from_sender++;
        if (group->added < oldest_sender) {
          oldest_sender = group->added;
          oldest_sender_key = key;
        }
      }
    }
    if (from_sender > MAX_INBOUND_PER_SENDER)
      g_hash_table_remove (account->inbound_groups, oldest_sender_key);
    else if (total > MAX_INBOUND_SESSIONS)
      g_hash_table_remove (account->inbound_groups, oldest_key);
    else
      break;
    account->dirty = TRUE;
  }
}

static void
add_own_inbound (MrtcOlmAccount *account, MrtcOlmOutboundGroup *group)
{
  gsize len = olm_outbound_group_session_key_length (group->session);
  guint8 *key = g_malloc (len);
  MrtcOlmInboundGroup *inbound;

  if (olm_outbound_group_session_key (group->session, key, len)
      == olm_error ()) {
    g_free (key);
    return;
  }
  inbound = inbound_group_new ();
  if (olm_init_inbound_group_session (inbound->session, key, len)
      == olm_error ()) {
    mrtc_olm_wipe (key, len);
    g_free (key);
    inbound_group_free (inbound);
    return;
  }
  mrtc_olm_wipe (key, len);
  g_free (key);
  inbound->room_id = g_strdup (group->room_id);
  inbound->sender_key = g_strdup (account->curve25519);
  inbound->sender_ed25519 = g_strdup (account->ed25519);
  inbound->sender_user = g_strdup (account->user_id);
  inbound->session_id = inbound_session_id (inbound->session);
  g_hash_table_replace (account->inbound_groups,
      inbound_key (inbound->room_id, inbound->sender_key, inbound->session_id),
      inbound);
  limit_inbound_groups (account, account->curve25519);
}

static MrtcOlmOutboundGroup *
ensure_outbound (MrtcOlmAccount *account, const gchar *room_id)
{
  MrtcOlmOutboundGroup *group
      = g_hash_table_lookup (account->outbound_groups, room_id);
  gsize random_len;
  guint8 *random;

  if (group != NULL && !outbound_expired (account, group))
    return group;

  group = outbound_group_new (room_id);
  random_len = olm_init_outbound_group_session_random_length (group->session);
  random = g_malloc (MAX (random_len, 1));
  mrtc_olm_random_bytes (random, random_len);
  if (olm_init_outbound_group_session (group->session, random, random_len)
      == olm_error ())
    g_error ("olm_init_outbound_group_session: %s",
        olm_outbound_group_session_last_error (group->session));
  mrtc_olm_wipe (random, random_len);
  g_free (random);
  group->session_id = outbound_session_id (group->session);
  group->created = g_get_real_time ();
  g_hash_table_replace (account->outbound_groups, g_strdup (room_id), group);
  add_own_inbound (account, group);
  account->dirty = TRUE;
  return group;
}

/**
 * mrtc_olm_account_megolm_room_key:
 * @account: the account
 * @room_id: an encrypted room
 *
 * Makes sure the room has a current outbound group session (creating a new
 * one when there is none or it is due for rotation) and returns the
 * `m.room_key` content to Olm-encrypt to every device in the room that
 * does not have it yet (see mrtc_olm_account_megolm_shared_with()).
 *
 * Returns: (transfer full): `{algorithm, room_id, session_id, session_key}`.
 */
JsonObject *
mrtc_olm_account_megolm_room_key (MrtcOlmAccount *account, const gchar *room_id)
{
  MrtcOlmOutboundGroup *group = ensure_outbound (account, room_id);
  gsize len = olm_outbound_group_session_key_length (group->session);
  guint8 *key = g_malloc0 (len + 1);
  JsonObject *content = json_object_new ();

  if (olm_outbound_group_session_key (group->session, key, len) == olm_error ())
    g_error ("olm_outbound_group_session_key: %s",
        olm_outbound_group_session_last_error (group->session));
  json_object_set_string_member (
      content, "algorithm", MRTC_OLM_ALGORITHM_MEGOLM);
  json_object_set_string_member (content, "room_id", room_id);
  json_object_set_string_member (content, "session_id", group->session_id);
  json_object_set_string_member (content, "session_key", (gchar *)key);
  mrtc_olm_wipe (key, len);
  g_free (key);
  return content;
}

/**
 * mrtc_olm_account_megolm_shared_with:
 * @account: the account
 * @room_id: a room
 * @device: a device
 *
 * Returns: %TRUE if the room's current outbound session was shared with
 *   @device.
 */
gboolean
mrtc_olm_account_megolm_shared_with (
    MrtcOlmAccount *account, const gchar *room_id, const MrtcOlmDevice *device)
{
  MrtcOlmOutboundGroup *group
      = g_hash_table_lookup (account->outbound_groups, room_id);
  g_autofree gchar *key = shared_key (device);

  return group != NULL && g_hash_table_contains (group->shared_with, key);
}

/**
 * mrtc_olm_account_megolm_mark_shared:
 * @account: the account
 * @room_id: a room
 * @device: a device the room key was sent to
 */
void
mrtc_olm_account_megolm_mark_shared (
    MrtcOlmAccount *account, const gchar *room_id, const MrtcOlmDevice *device)
{
  MrtcOlmOutboundGroup *group
      = g_hash_table_lookup (account->outbound_groups, room_id);

  if (group == NULL)
    return;
  g_hash_table_add (group->shared_with, shared_key (device));
  account->dirty = TRUE;
}

/**
 * mrtc_olm_account_megolm_discard:
 * @account: the account
 * @room_id: a room
 *
 * Drops the room's outbound session (call when a device or member leaves
 * the room, so that it cannot read what follows).
 */
void
mrtc_olm_account_megolm_discard (MrtcOlmAccount *account, const gchar *room_id)
{
  if (g_hash_table_remove (account->outbound_groups, room_id))
    account->dirty = TRUE;
}

/**
 * mrtc_olm_account_megolm_encrypt:
 * @account: the account
 * @room_id: the room
 * @type: the room event type
 * @content: the room event content
 * @error: return location for an error
 *
 * Encrypts with the room's current outbound session. Fails with
 * %MRTC_OLM_ERROR_NO_SESSION when there is none or it is due for rotation:
 * call mrtc_olm_account_megolm_room_key() and share the key first.
 *
 * Returns: (transfer full) (nullable): the `m.room.encrypted` content.
 */
JsonObject *
mrtc_olm_account_megolm_encrypt (MrtcOlmAccount *account, const gchar *room_id,
    const gchar *type, JsonObject *content, GError **error)
{
  MrtcOlmOutboundGroup *group
      = g_hash_table_lookup (account->outbound_groups, room_id);
  g_autoptr (JsonObject) payload = NULL;
  gchar *plain;
  gsize plain_len, message_len;
  gchar *message;
  JsonObject *encrypted;

  if (group == NULL || outbound_expired (account, group)) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_NO_SESSION,
        "no current Megolm session for %s: share a room key first", room_id);
    return NULL;
  }
  payload = json_object_new ();
  json_object_set_string_member (payload, "type", type);
  json_object_set_object_member (payload, "content", json_object_ref (content));
  json_object_set_string_member (payload, "room_id", room_id);
  plain = mrtc_olm_json_object_to_string (payload);
  plain_len = strlen (plain);
  message_len = olm_group_encrypt_message_length (group->session, plain_len);
  message = g_malloc0 (message_len + 1);
  if (olm_group_encrypt (group->session, (const guint8 *)plain, plain_len,
          (guint8 *)message, message_len)
      == olm_error ()) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
        "olm_group_encrypt: %s",
        olm_outbound_group_session_last_error (group->session));
    mrtc_olm_wipe_string (plain);
    g_free (message);
    return NULL;
  }
  mrtc_olm_wipe_string (plain);
  account->dirty = TRUE;

  encrypted = json_object_new ();
  json_object_set_string_member (
      encrypted, "algorithm", MRTC_OLM_ALGORITHM_MEGOLM);
  json_object_set_string_member (encrypted, "sender_key", account->curve25519);
  json_object_set_string_member (encrypted, "ciphertext", message);
  json_object_set_string_member (encrypted, "session_id", group->session_id);
  json_object_set_string_member (encrypted, "device_id", account->device_id);
  g_free (message);
  return encrypted;
}

/* ------------------------------------------------------------------------ */
/* Inbound */

/**
 * mrtc_olm_account_add_room_key:
 * @account: the account
 * @room_key_event: a decrypted `m.room_key` to-device event
 * @error: return location for an error
 *
 * Stores the Megolm session a verified device shared. The session is bound
 * to that device's keys and user: only events sent by that user decrypt
 * with it. A session already known from an earlier index is kept. At most
 * 256 sessions per sending device and 4096 in all are kept (the oldest
 * are dropped).
 *
 * Returns: %TRUE if the key is valid (new or already known).
 */
gboolean
mrtc_olm_account_add_room_key (MrtcOlmAccount *account,
    const MrtcOlmDecrypted *room_key_event, GError **error)
{
  JsonObject *content = room_key_event->content;
  const gchar *room_id = mrtc_olm_json_get_string (content, "room_id");
  const gchar *session_id = mrtc_olm_json_get_string (content, "session_id");
  const gchar *session_key = mrtc_olm_json_get_string (content, "session_key");
  const MrtcOlmDevice *device = room_key_event->sender_device;
  MrtcOlmInboundGroup *group, *known;
  gchar *key;

  if (g_strcmp0 (room_key_event->type, "m.room_key") != 0
      || g_strcmp0 (mrtc_olm_json_get_string (content, "algorithm"),
             MRTC_OLM_ALGORITHM_MEGOLM)
             != 0
      || room_id == NULL || session_id == NULL || session_key == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "malformed m.room_key from %s", room_key_event->sender);
    return FALSE;
  }

  group = inbound_group_new ();
  if (olm_init_inbound_group_session (
          group->session, (const guint8 *)session_key, strlen (session_key))
      == olm_error ()) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "invalid Megolm session key from %s: %s", room_key_event->sender,
        olm_inbound_group_session_last_error (group->session));
    inbound_group_free (group);
    return FALSE;
  }
  group->session_id = inbound_session_id (group->session);
  if (g_strcmp0 (group->session_id, session_id) != 0) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
        "m.room_key from %s: session_id does not match the key",
        room_key_event->sender);
    inbound_group_free (group);
    return FALSE;
  }
  group->room_id = g_strdup (room_id);
  group->sender_key = g_strdup (device->curve25519);
  group->sender_ed25519 = g_strdup (device->ed25519);
  group->sender_user = g_strdup (room_key_event->sender);

  key = inbound_key (room_id, device->curve25519, session_id);
  known = g_hash_table_lookup (account->inbound_groups, key);
  if (known != NULL
      && olm_inbound_group_session_first_known_index (known->session)
             <= olm_inbound_group_session_first_known_index (group->session)) {
    g_free (key);
    inbound_group_free (group);
    return TRUE;
  }
  if (known != NULL) {
    /* Keep the replay record of the session being replaced. */
    GHashTable *tmp = group->seen;

    group->seen = known->seen;
    known->seen = tmp;
    group->seen_floor = known->seen_floor;
  }
  g_hash_table_replace (account->inbound_groups, key, group);
  account->dirty = TRUE;
  limit_inbound_groups (account, device->curve25519);
  return TRUE;
}

/* Every inbound session of @room_id with @session_id (several devices may
 * have shared sessions with the same id). */
static GPtrArray *
find_inbound_by_id (
    MrtcOlmAccount *account, const gchar *room_id, const gchar *session_id)
{
  GPtrArray *found = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, account->inbound_groups);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    MrtcOlmInboundGroup *group = value;

    if (g_strcmp0 (group->room_id, room_id) == 0
        && g_strcmp0 (group->session_id, session_id) == 0)
      g_ptr_array_add (found, group);
  }
  return found;
}

/* Decrypts @ciphertext with @group; returns the plaintext or %NULL with
 * @error set. */
static guint8 *
group_decrypt (MrtcOlmInboundGroup *group, const gchar *ciphertext,
    const gchar *event_id, gsize *out_len, guint32 *index, GError **error)
{
  gsize len = strlen (ciphertext);
  g_autofree gchar *copy = g_strdup (ciphertext);
  gsize max_len, res;
  guint8 *plain;

  max_len = olm_group_decrypt_max_plaintext_length (
      group->session, (guint8 *)copy, len);
  if (max_len == olm_error ()) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_DECRYPT,
        "cannot decrypt Megolm event %s: %s", event_id,
        olm_inbound_group_session_last_error (group->session));
    return NULL;
  }
  memcpy (copy, ciphertext, len);
  plain = g_malloc (max_len + 1);
  res = olm_group_decrypt (
      group->session, (guint8 *)copy, len, plain, max_len, index);
  if (res == olm_error ()) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_DECRYPT,
        "cannot decrypt Megolm event %s: %s", event_id,
        olm_inbound_group_session_last_error (group->session));
    mrtc_olm_wipe (plain, max_len);
    g_free (plain);
    return NULL;
  }
  plain[res] = '\0';
  *out_len = res;
  return plain;
}

/* Records that @index of @group belongs to @record, pruning the oldest
 * records beyond the limit. */
static void
remember_seen (MrtcOlmInboundGroup *group, gchar *index_str, gchar *record)
{
  g_hash_table_insert (group->seen, index_str, record);
  while (g_hash_table_size (group->seen) > MAX_SEEN_PER_SESSION) {
    GHashTableIter iter;
    gpointer key;
    gpointer lowest_key = NULL;
    guint64 lowest = G_MAXUINT64;

    g_hash_table_iter_init (&iter, group->seen);
    while (g_hash_table_iter_next (&iter, &key, NULL)) {
      guint64 v = g_ascii_strtoull (key, NULL, 10);

      if (v < lowest) {
        lowest = v;
        lowest_key = key;
      }
    }
    group->seen_floor = MAX (group->seen_floor, (gint64)lowest);
    g_hash_table_remove (group->seen, lowest_key);
  }
}

/**
 * mrtc_olm_account_megolm_decrypt:
 * @account: the account
 * @room_id: the room the event is in
 * @sender: the event's sender
 * @event_id: the event id
 * @origin_server_ts: the event's timestamp
 * @content: the `m.room.encrypted` content
 * @error: return location for an error
 *
 * Decrypts a Megolm room event. Fails when the session is unknown
 * (%MRTC_OLM_ERROR_UNKNOWN_SESSION: the key may still arrive), when the
 * session was shared by another user than @sender or for another room
 * (%MRTC_OLM_ERROR_MISMATCH), and when the message index was already used
 * by another event, or is older than the replay records kept for the
 * session (%MRTC_OLM_ERROR_REPLAY). Without the deprecated `sender_key`
 * (MSC3700), every session of the room with that id is tried, those
 * shared by @sender only. Ciphertexts and payloads over 64 KiB, and
 * payloads nested too deeply, are refused (%MRTC_OLM_ERROR_INVALID).
 *
 * Returns: (transfer full) (nullable): the decrypted event.
 */
MrtcOlmGroupDecrypted *
mrtc_olm_account_megolm_decrypt (MrtcOlmAccount *account, const gchar *room_id,
    const gchar *sender, const gchar *event_id, gint64 origin_server_ts,
    JsonObject *content, GError **error)
{
  const gchar *sender_key = mrtc_olm_json_get_string (content, "sender_key");
  const gchar *session_id = mrtc_olm_json_get_string (content, "session_id");
  const gchar *ciphertext = mrtc_olm_json_get_string (content, "ciphertext");
  g_autoptr (GPtrArray) candidates = NULL;
  g_autofree gchar *index_str = NULL;
  g_autofree gchar *record = NULL;
  g_autoptr (JsonObject) payload = NULL;
  MrtcOlmInboundGroup *group = NULL;
  const gchar *seen;
  gsize res = 0;
  guint8 *plain = NULL;
  guint32 index = 0;
  guint i;
  gboolean other_sender = FALSE;
  GError *last = NULL;
  MrtcOlmGroupDecrypted *out;

  if (g_strcmp0 (mrtc_olm_json_get_string (content, "algorithm"),
          MRTC_OLM_ALGORITHM_MEGOLM)
          != 0
      || session_id == NULL || ciphertext == NULL || room_id == NULL
      || sender == NULL || event_id == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "malformed Megolm event");
    return NULL;
  }
  if (strlen (ciphertext) > MAX_MEGOLM_CIPHERTEXT_LEN) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "Megolm event %s too large", event_id);
    return NULL;
  }
  if (sender_key != NULL) {
    g_autofree gchar *key = inbound_key (room_id, sender_key, session_id);
    MrtcOlmInboundGroup *found
        = g_hash_table_lookup (account->inbound_groups, key);

    candidates = g_ptr_array_new ();
    if (found != NULL)
      g_ptr_array_add (candidates, found);
  } else {
    /* sender_key and device_id are deprecated (MSC3700) and may be absent:
     * find the sessions by room and id. Anyone holding the room's key may
     * have shared another session under the same id, so try all of them. */
    candidates = find_inbound_by_id (account, room_id, session_id);
  }
  if (candidates->len == 0) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_UNKNOWN_SESSION,
        "no Megolm session %s from %s in %s", session_id, sender, room_id);
    return NULL;
  }

  for (i = 0; i < candidates->len && plain == NULL; i++) {
    MrtcOlmInboundGroup *candidate = g_ptr_array_index (candidates, i);

    if (g_strcmp0 (candidate->sender_user, sender) != 0) {
      other_sender = TRUE;
      continue;
    }
    g_clear_error (&last);
    plain
        = group_decrypt (candidate, ciphertext, event_id, &res, &index, &last);
    if (plain != NULL)
      group = candidate;
  }
  if (plain == NULL) {
    if (last != NULL) {
      g_propagate_error (error, last);
    } else {
      g_assert (other_sender);
      g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
          "Megolm session %s in %s was not shared by %s", session_id, room_id,
          sender);
    }
    return NULL;
  }
  g_clear_error (&last);

  index_str = g_strdup_printf ("%u", index);
  record = g_strdup_printf (
      "%s" MRTC_OLM_SEP "%" G_GINT64_FORMAT, event_id, origin_server_ts);
  seen = g_hash_table_lookup (group->seen, index_str);
  if ((seen != NULL && strcmp (seen, record) != 0)
      || (seen == NULL && (gint64)index <= group->seen_floor)) {
    mrtc_olm_wipe (plain, res);
    g_free (plain);
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_REPLAY,
        seen != NULL ? "Megolm message index %u replayed in %s"
                     : "Megolm message index %u of %s is older than the "
                       "replay records kept",
        index, event_id);
    return NULL;
  }

  payload
      = mrtc_olm_json_payload_from_string ((const gchar *)plain, res, error);
  mrtc_olm_wipe (plain, res);
  g_free (plain);
  if (payload == NULL)
    return NULL;
  if (g_strcmp0 (mrtc_olm_json_get_string (payload, "room_id"), room_id) != 0
      || group->room_id == NULL || strcmp (group->room_id, room_id) != 0) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
        "Megolm event %s was encrypted for another room", event_id);
    return NULL;
  }
  if (mrtc_olm_json_get_string (payload, "type") == NULL
      || mrtc_olm_json_get_object (payload, "content") == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "Megolm payload of %s lacks type or content", event_id);
    return NULL;
  }
  if (seen == NULL) {
    remember_seen (
        group, g_steal_pointer (&index_str), g_steal_pointer (&record));
    account->dirty = TRUE;
  }

  out = g_new0 (MrtcOlmGroupDecrypted, 1);
  out->type = g_strdup (mrtc_olm_json_get_string (payload, "type"));
  out->content
      = json_object_ref (mrtc_olm_json_get_object (payload, "content"));
  out->message_index = index;
  out->sender_curve25519 = g_strdup (group->sender_key);
  out->sender_ed25519 = g_strdup (group->sender_ed25519);
  return out;
}

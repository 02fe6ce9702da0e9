/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/*
 * MatrixRTC per-member media keys as matrix-js-sdk 43 exchanges them:
 * `io.element.call.encryption_keys` to-device contents (sent Olm-encrypted),
 * the sending side's rotation policy (RTCEncryptionManager) and the
 * receiving side's binding of keys to members.
 *
 * Nothing here logs key bytes.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mrtcolmmediakeys.h"

#include <string.h>

/* Defaults of matrix-js-sdk 43's RTCEncryptionManager. */
#define DEFAULT_USE_KEY_DELAY_MS 1000
#define DEFAULT_GRACE_PERIOD_MS 10000
/* After a failed key send: first retry, doubled per failure up to the max. */
#define SEND_RETRY_MS 2000
#define SEND_RETRY_MAX_MS 60000
/* How long keys from someone not (yet) a member are kept. */
#define DEFAULT_HOLD_MS 10000
#define MAX_HELD_KEYS 256

MrtcOlmMember *
mrtc_olm_member_new (const gchar *user_id, const gchar *device_id,
    const gchar *member_id, const gchar *identity, gint64 created_ts)
{
  MrtcOlmMember *member = g_new0 (MrtcOlmMember, 1);

  member->user_id = g_strdup (user_id);
  member->device_id = g_strdup (device_id);
  member->member_id = g_strdup (member_id);
  member->identity = g_strdup (identity);
  member->created_ts = created_ts;
  return member;
}

MrtcOlmMember *
mrtc_olm_member_copy (const MrtcOlmMember *member)
{
  return mrtc_olm_member_new (member->user_id, member->device_id,
      member->member_id, member->identity, member->created_ts);
}

void
mrtc_olm_member_free (MrtcOlmMember *member)
{
  if (member == NULL)
    return;
  g_free (member->user_id);
  g_free (member->device_id);
  g_free (member->member_id);
  g_free (member->identity);
  g_free (member);
}

/* JSON.stringify() writes both null and undefined array elements as null. */
static void
append_string_or_null (GString *json, const gchar *str)
{
  if (str == NULL)
    g_string_append (json, "null");
  else
    mrtc_olm_json_string_append (json, str);
}

/**
 * mrtc_olm_rtc_backend_identity:
 * @user_id: the member's user
 * @device_id: the member's device
 * @member_id: (nullable): the membership's member id
 *
 * The LiveKit identity of a sticky (MSC4143) member as matrix-js-sdk 43
 * computes it: unpadded base64 of SHA-256 of
 * `JSON.stringify([user_id, device_id, member_id])` (a %NULL argument is
 * written as `null`, as JSON.stringify() writes null and undefined).
 * (Legacy members use `"<user_id>:<device_id>"`.)
 *
 * Returns: (transfer full): the identity.
 */
gchar *
mrtc_olm_rtc_backend_identity (
    const gchar *user_id, const gchar *device_id, const gchar *member_id)
{
  GString *json = g_string_new ("[");
  guint8 digest[32];
  gsize digest_len = sizeof (digest);
  GChecksum *checksum = g_checksum_new (G_CHECKSUM_SHA256);

  append_string_or_null (json, user_id);
  g_string_append_c (json, ',');
  append_string_or_null (json, device_id);
  g_string_append_c (json, ',');
  append_string_or_null (json, member_id);
  g_string_append_c (json, ']');
  g_checksum_update (checksum, (const guchar *)json->str, json->len);
  g_checksum_get_digest (checksum, digest, &digest_len);
  g_checksum_free (checksum);
  g_string_free (json, TRUE);
  return mrtc_olm_base64_encode_unpadded (digest, digest_len);
}

/* ------------------------------------------------------------------------ */
/* Content */

/**
 * mrtc_olm_media_key_content_build:
 * @room_id: the call's room
 * @index: key index (taken modulo 256)
 * @key: key bytes
 * @key_len: their number
 * @device_id: our device id (`member.claimed_device_id`)
 * @member_id: (nullable): our membership's member id (`member.id`; %NULL
 *   writes `null`)
 * @sent_ts: wall-clock time in ms
 *
 * Returns: (transfer full): the `io.element.call.encryption_keys` content
 *   in matrix-js-sdk 43's shape (key as padded standard base64). The
 *   object holds the key as a json-glib string, which is not wiped when it
 *   is freed: free it as soon as it is encrypted.
 */
JsonObject *
mrtc_olm_media_key_content_build (const gchar *room_id, guint index,
    const guint8 *key, gsize key_len, const gchar *device_id,
    const gchar *member_id, gint64 sent_ts)
{
  JsonObject *content = json_object_new ();
  JsonObject *keys = json_object_new ();
  JsonObject *member = json_object_new ();
  JsonObject *session = json_object_new ();
  gchar *key_b64 = g_base64_encode (key, key_len);

  json_object_set_int_member (keys, "index", index % 256);
  json_object_set_string_member (keys, "key", key_b64);
  mrtc_olm_wipe_string (key_b64);
  json_object_set_object_member (content, "keys", keys);
  json_object_set_string_member (content, "room_id", room_id);
  json_object_set_string_member (member, "claimed_device_id", device_id);
  if (member_id != NULL)
    json_object_set_string_member (member, "id", member_id);
  else
    json_object_set_null_member (member, "id");
  json_object_set_object_member (content, "member", member);
  json_object_set_string_member (session, "call_id", "");
  json_object_set_string_member (session, "application", "m.call");
  json_object_set_string_member (session, "scope", "m.room");
  json_object_set_object_member (content, "session", session);
  json_object_set_int_member (content, "sent_ts", sent_ts);
  return content;
}

void
mrtc_olm_media_key_content_free (MrtcOlmMediaKeyContent *content)
{
  if (content == NULL)
    return;
  mrtc_olm_wipe (content->key, sizeof (content->key));
  g_free (content->room_id);
  g_free (content->claimed_device_id);
  g_free (content->member_id);
  g_free (content);
}

/**
 * mrtc_olm_media_key_content_parse:
 * @content: an `io.element.call.encryption_keys` to-device content
 * @error: return location for an error
 *
 * Accepts what matrix-js-sdk 43 accepts (key in base64 or base64url,
 * padded or not), with the key 1 to %MRTC_OLM_MEDIA_KEY_MAX_LEN bytes long
 * and an integer index in 0..255.
 *
 * Returns: (transfer full) (nullable): the parsed content.
 */
MrtcOlmMediaKeyContent *
mrtc_olm_media_key_content_parse (JsonObject *content, GError **error)
{
  JsonObject *keys = mrtc_olm_json_get_object (content, "keys");
  JsonObject *member = mrtc_olm_json_get_object (content, "member");
  const gchar *room_id = mrtc_olm_json_get_string (content, "room_id");
  const gchar *key = mrtc_olm_json_get_string (keys, "key");
  const gchar *device_id
      = mrtc_olm_json_get_string (member, "claimed_device_id");
  JsonNode *index_node
      = keys != NULL ? json_object_get_member (keys, "index") : NULL;
  JsonNode *ts_node
      = content != NULL ? json_object_get_member (content, "sent_ts") : NULL;
  MrtcOlmMediaKeyContent *out;
  guint8 *raw;
  gsize raw_len = 0;
  gint64 index;

  if (room_id == NULL || room_id[0] == '\0' || key == NULL || device_id == NULL
      || device_id[0] == '\0' || index_node == NULL
      || !JSON_NODE_HOLDS_VALUE (index_node)) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "media key content lacks room_id, keys.key, keys.index or "
        "member.claimed_device_id");
    return NULL;
  }
  if (!mrtc_olm_json_node_get_safe_int (index_node, &index)) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "media key index is not an integer");
    return NULL;
  }
  if (index < 0 || index > 255) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "media key index %" G_GINT64_FORMAT " out of range", index);
    return NULL;
  }
  raw = mrtc_olm_base64_decode_strict (key, TRUE, &raw_len);
  if (raw == NULL || raw_len == 0 || raw_len > MRTC_OLM_MEDIA_KEY_MAX_LEN) {
    if (raw != NULL) {
      mrtc_olm_wipe (raw, raw_len);
      g_free (raw);
    }
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "media key is not base64 of 1 to %d bytes", MRTC_OLM_MEDIA_KEY_MAX_LEN);
    return NULL;
  }

  out = g_new0 (MrtcOlmMediaKeyContent, 1);
  out->index = (guint)index;
  memcpy (out->key, raw, raw_len);
  out->key_len = raw_len;
  mrtc_olm_wipe (raw, raw_len);
  g_free (raw);
  out->room_id = g_strdup (room_id);
  out->claimed_device_id = g_strdup (device_id);
  out->member_id = g_strdup (mrtc_olm_json_get_string (member, "id"));
  /* Informative only (keys are ordered by their arrival): a missing,
   * fractional or out-of-range value reads as 0. */
  if (!mrtc_olm_json_node_get_safe_int (ts_node, &out->sent_ts))
    out->sent_ts = 0;
  return out;
}

/* ------------------------------------------------------------------------ */
/* Sending side */

void
mrtc_olm_media_key_action_free (MrtcOlmMediaKeyAction *action)
{
  if (action == NULL)
    return;
  mrtc_olm_wipe (action->key, sizeof (action->key));
  if (action->targets != NULL)
    g_ptr_array_unref (action->targets);
  g_free (action);
}

typedef struct
{
  gint64 due;
  guint index;
  guint8 key[MRTC_OLM_MEDIA_KEY_LEN];
} PendingUse;

struct _MrtcOlmMediaKeyManager
{
  gchar *own_user_id;
  gchar *own_device_id;
  MrtcOlmClockFunc clock;
  gpointer clock_data;
  gint64 use_key_delay_ms;
  gint64 grace_ms;
  guint rotation_participant_limit;

  gboolean have_key;
  guint index;
  guint8 key[MRTC_OLM_MEDIA_KEY_LEN];
  gint64 key_created;
  /* MrtcOlmMember the current key was shared with */
  GPtrArray *shared_with;
  /* MrtcOlmMember a send of the current key failed for: not counted as
   * having it, nor as joiners (re-sending is no reason to rotate), but as
   * leavers when they leave (the failed request may have arrived). */
  GPtrArray *unsent;
  /* MrtcOlmMember: the other members of the last update */
  GPtrArray *others;
  /* Clock time of the next re-send to members whose send failed, or -1 */
  gint64 retry_due;
  guint send_failures;

  GQueue actions;      /* MrtcOlmMediaKeyAction */
  GQueue pending_uses; /* PendingUse, by due time */
};

static gint64
default_clock (gpointer user_data)
{
  return g_get_monotonic_time () / 1000;
}

/**
 * mrtc_olm_media_key_manager_new:
 * @own_user_id: our user
 * @own_device_id: our device (never a recipient)
 * @clock: (nullable): monotonic ms clock; %NULL for g_get_monotonic_time()
 * @clock_data: data for @clock
 *
 * Our own media key and its rotation, as matrix-js-sdk 43's
 * RTCEncryptionManager: the first key (index 0) is used at once; a new key
 * (next index modulo 256) goes to every member when someone left, or when
 * someone joined and the current key is older than the grace period
 * (otherwise joiners just get the current key); a new key is used
 * use-key-delay (1 s) after it was sent. The owner feeds the member list
 * and a timer, carries out the actions, and reports SEND actions that did
 * not reach all their targets
 * (mrtc_olm_media_key_manager_key_send_failed()).
 *
 * Returns: (transfer full): the manager.
 */
MrtcOlmMediaKeyManager *
mrtc_olm_media_key_manager_new (const gchar *own_user_id,
    const gchar *own_device_id, MrtcOlmClockFunc clock, gpointer clock_data)
{
  MrtcOlmMediaKeyManager *manager = g_new0 (MrtcOlmMediaKeyManager, 1);

  manager->own_user_id = g_strdup (own_user_id);
  manager->own_device_id = g_strdup (own_device_id);
  manager->clock = clock != NULL ? clock : default_clock;
  manager->clock_data = clock_data;
  manager->use_key_delay_ms = DEFAULT_USE_KEY_DELAY_MS;
  manager->grace_ms = DEFAULT_GRACE_PERIOD_MS;
  manager->shared_with
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  manager->unsent
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  manager->others
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  manager->retry_due = -1;
  g_queue_init (&manager->actions);
  g_queue_init (&manager->pending_uses);
  return manager;
}

static void
pending_use_free (gpointer data)
{
  PendingUse *use = data;

  mrtc_olm_wipe (use->key, sizeof (use->key));
  g_free (use);
}

void
mrtc_olm_media_key_manager_free (MrtcOlmMediaKeyManager *manager)
{
  if (manager == NULL)
    return;
  g_free (manager->own_user_id);
  g_free (manager->own_device_id);
  mrtc_olm_wipe (manager->key, sizeof (manager->key));
  g_ptr_array_unref (manager->shared_with);
  g_ptr_array_unref (manager->unsent);
  g_ptr_array_unref (manager->others);
  g_queue_clear_full (
      &manager->actions, (GDestroyNotify)mrtc_olm_media_key_action_free);
  g_queue_clear_full (&manager->pending_uses, pending_use_free);
  g_free (manager);
}

void
mrtc_olm_media_key_manager_set_use_key_delay (
    MrtcOlmMediaKeyManager *manager, gint64 delay_ms)
{
  manager->use_key_delay_ms = MAX (delay_ms, 0);
}

/**
 * mrtc_olm_media_key_manager_set_rotation_participant_limit:
 * @manager: the manager
 * @limit: number of members (us included) from which keys are no longer
 *   rotated, or 0 for no limit (the default)
 *
 * As matrix-js-sdk's `keyRotationParticipantLimit` (Element Call's
 * `key_rotation_participant_limit`): in large calls, joiners just get the
 * current key and leaves do not rotate it.
 */
void
mrtc_olm_media_key_manager_set_rotation_participant_limit (
    MrtcOlmMediaKeyManager *manager, guint limit)
{
  manager->rotation_participant_limit = limit;
}

void
mrtc_olm_media_key_manager_set_grace_period (
    MrtcOlmMediaKeyManager *manager, gint64 grace_ms)
{
  manager->grace_ms = MAX (grace_ms, 0);
}

static gboolean
same_device (const MrtcOlmMember *a, const MrtcOlmMember *b)
{
  return g_strcmp0 (a->user_id, b->user_id) == 0
         && g_strcmp0 (a->device_id, b->device_id) == 0;
}

static gboolean
same_membership (const MrtcOlmMember *a, const MrtcOlmMember *b)
{
  return same_device (a, b) && a->created_ts == b->created_ts;
}

static gboolean
list_has (GPtrArray *list, const MrtcOlmMember *m,
    gboolean (*eq) (const MrtcOlmMember *, const MrtcOlmMember *))
{
  guint i;

  for (i = 0; i < list->len; i++)
    if (eq (g_ptr_array_index (list, i), m))
      return TRUE;
  return FALSE;
}

/* Removes every member of @list on @m's device. */
static void
remove_device (GPtrArray *list, const MrtcOlmMember *m)
{
  guint i;

  for (i = list->len; i > 0; i--)
    if (same_device (g_ptr_array_index (list, i - 1), m))
      g_ptr_array_remove_index (list, i - 1);
}

/* A re-sent membership (same device, new timestamp) is a re-join, not a
 * leave: forgets the entries of @list for previous incarnations of
 * members in @others. */
static void
forget_previous_incarnations (GPtrArray *list, GPtrArray *others)
{
  guint i, j;

  for (i = list->len; i > 0; i--) {
    MrtcOlmMember *s = g_ptr_array_index (list, i - 1);

    for (j = 0; j < others->len; j++) {
      MrtcOlmMember *o = g_ptr_array_index (others, j);

      if (same_device (s, o) && s->created_ts != o->created_ts) {
        g_ptr_array_remove_index (list, i - 1);
        break;
      }
    }
  }
}

static GPtrArray *
member_array_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
}

static void
new_key (MrtcOlmMediaKeyManager *manager, gint64 now)
{
  manager->index = manager->have_key ? (manager->index + 1) % 256 : 0;
  mrtc_olm_random_bytes (manager->key, sizeof (manager->key));
  manager->key_created = now;
  manager->have_key = TRUE;
  g_ptr_array_set_size (manager->shared_with, 0);
  g_ptr_array_set_size (manager->unsent, 0);
  /* The new key goes to everyone: no retry of the old one is due. */
  manager->retry_due = -1;
  manager->send_failures = 0;
}

static void
queue_send (MrtcOlmMediaKeyManager *manager, GPtrArray *targets)
{
  MrtcOlmMediaKeyAction *action = g_new0 (MrtcOlmMediaKeyAction, 1);
  guint i;

  action->kind = MRTC_OLM_MEDIA_KEY_ACTION_SEND;
  action->index = manager->index;
  memcpy (action->key, manager->key, sizeof (action->key));
  action->targets = member_array_new ();
  for (i = 0; i < targets->len; i++) {
    MrtcOlmMember *m = g_ptr_array_index (targets, i);

    g_ptr_array_add (action->targets, mrtc_olm_member_copy (m));
    g_ptr_array_add (manager->shared_with, mrtc_olm_member_copy (m));
    remove_device (manager->unsent, m);
  }
  g_queue_push_tail (&manager->actions, action);
}

static void
queue_use (MrtcOlmMediaKeyManager *manager, guint index, const guint8 *key)
{
  MrtcOlmMediaKeyAction *action = g_new0 (MrtcOlmMediaKeyAction, 1);

  action->kind = MRTC_OLM_MEDIA_KEY_ACTION_USE;
  action->index = index;
  memcpy (action->key, key, sizeof (action->key));
  g_queue_push_tail (&manager->actions, action);
}

static void
schedule_use (MrtcOlmMediaKeyManager *manager, gint64 now)
{
  PendingUse *use;

  if (manager->use_key_delay_ms == 0) {
    queue_use (manager, manager->index, manager->key);
    return;
  }
  use = g_new0 (PendingUse, 1);
  use->due = now + manager->use_key_delay_ms;
  use->index = manager->index;
  memcpy (use->key, manager->key, sizeof (use->key));
  g_queue_push_tail (&manager->pending_uses, use);
}

/**
 * mrtc_olm_media_key_manager_update_members:
 * @manager: the manager
 * @members: (element-type MrtcOlmMember): the call's current members (our
 *   own device is ignored)
 *
 * Call when we joined and whenever the member list is recomputed; then
 * carry out the queued actions (mrtc_olm_media_key_manager_pop_action()).
 */
void
mrtc_olm_media_key_manager_update_members (
    MrtcOlmMediaKeyManager *manager, GPtrArray *members)
{
  gint64 now = manager->clock (manager->clock_data);
  g_autoptr (GPtrArray) others = member_array_new ();
  g_autoptr (GPtrArray) joined = member_array_new ();
  gboolean any_left = FALSE;
  guint new_joiners = 0;
  guint i;

  for (i = 0; members != NULL && i < members->len; i++) {
    MrtcOlmMember *m = g_ptr_array_index (members, i);

    if (g_strcmp0 (m->user_id, manager->own_user_id) == 0
        && g_strcmp0 (m->device_id, manager->own_device_id) == 0)
      continue;
    g_ptr_array_add (others, mrtc_olm_member_copy (m));
  }
  g_ptr_array_set_size (manager->others, 0);
  for (i = 0; i < others->len; i++)
    g_ptr_array_add (
        manager->others, mrtc_olm_member_copy (g_ptr_array_index (others, i)));

  if (!manager->have_key) {
    new_key (manager, now);
    queue_use (manager, manager->index, manager->key);
    if (others->len > 0)
      queue_send (manager, others);
    return;
  }

  forget_previous_incarnations (manager->shared_with, others);
  forget_previous_incarnations (manager->unsent, others);
  for (i = 0; i < manager->shared_with->len; i++)
    if (!list_has (others, g_ptr_array_index (manager->shared_with, i),
            same_membership))
      any_left = TRUE;
  for (i = 0; i < manager->unsent->len; i++)
    if (!list_has (
            others, g_ptr_array_index (manager->unsent, i), same_membership))
      any_left = TRUE;
  for (i = 0; i < others->len; i++) {
    MrtcOlmMember *o = g_ptr_array_index (others, i);

    if (!list_has (manager->shared_with, o, same_membership)) {
      g_ptr_array_add (joined, mrtc_olm_member_copy (o));
      /* Members we only failed to reach are no reason to rotate. */
      if (!list_has (manager->unsent, o, same_membership))
        new_joiners++;
    }
  }

  if (manager->rotation_participant_limit > 0 && members != NULL
      && members->len >= manager->rotation_participant_limit) {
    if (joined->len > 0)
      queue_send (manager, joined);
  } else if (any_left
             || (new_joiners > 0
                 && now - manager->key_created >= manager->grace_ms)) {
    new_key (manager, now);
    if (others->len > 0) {
      queue_send (manager, others);
      schedule_use (manager, now);
    } else {
      /* Alone: nobody to wait for. */
      queue_use (manager, manager->index, manager->key);
    }
  } else if (joined->len > 0) {
    queue_send (manager, joined);
  }
  /* Those who left (without a rotation, above the participant limit) need
   * no re-send. */
  for (i = manager->unsent->len; i > 0; i--)
    if (!list_has (others, g_ptr_array_index (manager->unsent, i - 1),
            same_membership))
      g_ptr_array_remove_index (manager->unsent, i - 1);
}

/**
 * mrtc_olm_media_key_manager_key_sent:
 * @manager: the manager
 * @index: the index of a key whose SEND action was carried out
 *
 * Optional: tells when the to-device request carrying a new key completed,
 * so that the key is used the use-key delay after that (as matrix-js-sdk
 * does) rather than after the member list changed.
 */
void
mrtc_olm_media_key_manager_key_sent (
    MrtcOlmMediaKeyManager *manager, guint index)
{
  gint64 now = manager->clock (manager->clock_data);
  GList *l;

  for (l = manager->pending_uses.head; l != NULL; l = l->next) {
    PendingUse *use = l->data;

    if (use->index == index && use->due < now + manager->use_key_delay_ms)
      use->due = now + manager->use_key_delay_ms;
  }
}

/**
 * mrtc_olm_media_key_manager_key_send_failed:
 * @manager: the manager
 * @index: the index of a SEND action that failed, fully or in part
 * @failed: (nullable) (element-type MrtcOlmMember): the targets it did not
 *   reach (only `user_id` and `device_id` are used; pass the action's
 *   `targets` when the whole request failed), or %NULL for every member the
 *   current key went to
 *
 * A SEND action marks its targets as having the current key as soon as it
 * is queued; call this when carrying it out failed for some or all of them
 * (no verified device keys or Olm session, the request failed), so that
 * they are no longer counted as having it: the key is then sent to them
 * again, by mrtc_olm_media_key_manager_tick() after a back-off (2 s,
 * doubling per failure up to 60 s; see
 * mrtc_olm_media_key_manager_next_deadline()), or by the next member
 * update, whichever comes first. Such re-sends never cause a rotation by
 * themselves, but such a member leaving does (the failed request may have
 * reached it). A failure for an index that is no longer the current key is
 * ignored (the newer key went to everyone).
 */
void
mrtc_olm_media_key_manager_key_send_failed (
    MrtcOlmMediaKeyManager *manager, guint index, GPtrArray *failed)
{
  gint64 now = manager->clock (manager->clock_data);
  gint64 delay;
  guint i, j;

  if (!manager->have_key || index != manager->index)
    return;
  for (i = manager->shared_with->len; i > 0; i--) {
    MrtcOlmMember *s = g_ptr_array_index (manager->shared_with, i - 1);
    gboolean hit = failed == NULL;

    for (j = 0; !hit && j < failed->len; j++)
      hit = same_device (s, g_ptr_array_index (failed, j));
    if (hit) {
      g_ptr_array_add (manager->unsent, mrtc_olm_member_copy (s));
      g_ptr_array_remove_index (manager->shared_with, i - 1);
    }
  }
  delay = MIN (
      SEND_RETRY_MS << MIN (manager->send_failures, 5), SEND_RETRY_MAX_MS);
  manager->send_failures++;
  manager->retry_due = now + delay;
}

/**
 * mrtc_olm_media_key_manager_tick:
 * @manager: the manager
 *
 * Queues the USE actions that are due, and re-sends of the current key to
 * members a send failed for (call at
 * mrtc_olm_media_key_manager_next_deadline()).
 */
void
mrtc_olm_media_key_manager_tick (MrtcOlmMediaKeyManager *manager)
{
  gint64 now = manager->clock (manager->clock_data);
  PendingUse *use;

  while ((use = g_queue_peek_head (&manager->pending_uses)) != NULL
         && use->due <= now) {
    g_queue_pop_head (&manager->pending_uses);
    queue_use (manager, use->index, use->key);
    pending_use_free (use);
  }

  if (manager->retry_due >= 0 && manager->retry_due <= now) {
    g_autoptr (GPtrArray) missing = member_array_new ();
    guint i;

    manager->retry_due = -1;
    for (i = 0; i < manager->others->len; i++) {
      MrtcOlmMember *o = g_ptr_array_index (manager->others, i);

      if (!list_has (manager->shared_with, o, same_membership))
        g_ptr_array_add (missing, mrtc_olm_member_copy (o));
    }
    if (missing->len > 0)
      queue_send (manager, missing);
  }
}

/**
 * mrtc_olm_media_key_manager_next_deadline:
 * @manager: the manager
 *
 * Returns: the clock time at which mrtc_olm_media_key_manager_tick() has
 *   something to do, or -1.
 */
gint64
mrtc_olm_media_key_manager_next_deadline (MrtcOlmMediaKeyManager *manager)
{
  PendingUse *use = g_queue_peek_head (&manager->pending_uses);
  gint64 due = use != NULL ? use->due : -1;

  if (manager->retry_due >= 0 && (due < 0 || manager->retry_due < due))
    due = manager->retry_due;
  return due;
}

/**
 * mrtc_olm_media_key_manager_pop_action:
 * @manager: the manager
 *
 * Returns: (transfer full) (nullable): the next action, in order.
 */
MrtcOlmMediaKeyAction *
mrtc_olm_media_key_manager_pop_action (MrtcOlmMediaKeyManager *manager)
{
  return g_queue_pop_head (&manager->actions);
}

/* ------------------------------------------------------------------------ */
/* Receiving side */

void
mrtc_olm_media_key_delivery_free (MrtcOlmMediaKeyDelivery *delivery)
{
  if (delivery == NULL)
    return;
  mrtc_olm_wipe (delivery->key, sizeof (delivery->key));
  g_free (delivery->identity);
  g_free (delivery->user_id);
  g_free (delivery->device_id);
  g_free (delivery);
}

typedef struct
{
  gchar *user_id;
  gchar *device_id;
  gint64 received;
  MrtcOlmMediaKeyContent *content;
} HeldKey;

static void
held_key_free (gpointer data)
{
  HeldKey *held = data;

  g_free (held->user_id);
  g_free (held->device_id);
  mrtc_olm_media_key_content_free (held->content);
  g_free (held);
}

struct _MrtcOlmMediaKeyReceiver
{
  gchar *room_id;
  MrtcOlmClockFunc clock;
  gpointer clock_data;
  gint64 hold_ms;
  GPtrArray *members; /* MrtcOlmMember */
  GQueue held;        /* HeldKey, oldest first */
  GQueue deliveries;  /* MrtcOlmMediaKeyDelivery */
  /* "user SEP device SEP index" -> arrival time (receiver clock) of the
   * newest key delivered; entries of members that left are pruned. */
  GHashTable *newest;
  guint dropped;
};

/**
 * mrtc_olm_media_key_receiver_new:
 * @room_id: the call's room
 * @clock: (nullable): monotonic ms clock; %NULL for g_get_monotonic_time()
 * @clock_data: data for @clock
 *
 * Binds received media keys to call members: a key is delivered only if it
 * came Olm-encrypted from a verified device (an #MrtcOlmDecrypted), names
 * that very device as `claimed_device_id`, is for this room, and its
 * sender's device is a current member. Keys for devices that are not (yet)
 * members are held for a while (10 s) and delivered if the membership
 * shows up. Keys are ordered by their arrival here, as matrix-js-sdk 43's
 * OutdatedKeyFilter does (the sender's `sent_ts` is not trusted): a held
 * key is not delivered when a key for the same device and index that
 * arrived later was already delivered.
 *
 * Returns: (transfer full): the receiver.
 */
MrtcOlmMediaKeyReceiver *
mrtc_olm_media_key_receiver_new (
    const gchar *room_id, MrtcOlmClockFunc clock, gpointer clock_data)
{
  MrtcOlmMediaKeyReceiver *receiver = g_new0 (MrtcOlmMediaKeyReceiver, 1);

  receiver->room_id = g_strdup (room_id);
  receiver->clock = clock != NULL ? clock : default_clock;
  receiver->clock_data = clock_data;
  receiver->hold_ms = DEFAULT_HOLD_MS;
  receiver->members = member_array_new ();
  g_queue_init (&receiver->held);
  g_queue_init (&receiver->deliveries);
  receiver->newest
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return receiver;
}

void
mrtc_olm_media_key_receiver_free (MrtcOlmMediaKeyReceiver *receiver)
{
  if (receiver == NULL)
    return;
  g_free (receiver->room_id);
  g_ptr_array_unref (receiver->members);
  g_queue_clear_full (&receiver->held, held_key_free);
  g_queue_clear_full (
      &receiver->deliveries, (GDestroyNotify)mrtc_olm_media_key_delivery_free);
  g_hash_table_unref (receiver->newest);
  g_free (receiver);
}

void
mrtc_olm_media_key_receiver_set_hold_time (
    MrtcOlmMediaKeyReceiver *receiver, gint64 hold_ms)
{
  receiver->hold_ms = MAX (hold_ms, 0);
}

static const MrtcOlmMember *
find_member (MrtcOlmMediaKeyReceiver *receiver, const gchar *user_id,
    const gchar *device_id)
{
  guint i;

  for (i = 0; i < receiver->members->len; i++) {
    const MrtcOlmMember *m = g_ptr_array_index (receiver->members, i);

    if (g_strcmp0 (m->user_id, user_id) == 0
        && g_strcmp0 (m->device_id, device_id) == 0)
      return m;
  }
  return NULL;
}

static gchar *
newest_prefix (const gchar *user_id, const gchar *device_id)
{
  return g_strconcat (user_id, MRTC_OLM_SEP, device_id, MRTC_OLM_SEP, NULL);
}

/* Delivers @content for @member unless a key for the same device and index
 * that arrived after it (@arrived, receiver clock) was already delivered. */
static void
deliver (MrtcOlmMediaKeyReceiver *receiver, const MrtcOlmMember *member,
    const MrtcOlmMediaKeyContent *content, gint64 arrived)
{
  g_autofree gchar *prefix = newest_prefix (member->user_id, member->device_id);
  gchar *key = g_strdup_printf ("%s%u", prefix, content->index);
  gint64 *newest = g_hash_table_lookup (receiver->newest, key);
  MrtcOlmMediaKeyDelivery *delivery;

  if (newest != NULL && arrived < *newest) {
    g_debug ("ignoring an outdated media key of %s %s index %u",
        member->user_id, member->device_id, content->index);
    receiver->dropped++;
    g_free (key);
    return;
  }
  if (newest == NULL) {
    newest = g_new (gint64, 1);
    g_hash_table_insert (receiver->newest, key, newest);
  } else {
    g_free (key);
  }
  *newest = arrived;

  delivery = g_new0 (MrtcOlmMediaKeyDelivery, 1);
  delivery->identity = g_strdup (member->identity);
  delivery->index = content->index;
  memcpy (delivery->key, content->key, content->key_len);
  delivery->key_len = content->key_len;
  delivery->user_id = g_strdup (member->user_id);
  delivery->device_id = g_strdup (member->device_id);
  g_queue_push_tail (&receiver->deliveries, delivery);
}

static void
expire_held (MrtcOlmMediaKeyReceiver *receiver, gint64 now)
{
  HeldKey *held;

  while ((held = g_queue_peek_head (&receiver->held)) != NULL
         && (now - held->received > receiver->hold_ms
             || g_queue_get_length (&receiver->held) > MAX_HELD_KEYS)) {
    g_debug ("dropping a held media key of %s %s: no such member",
        held->user_id, held->device_id);
    receiver->dropped++;
    g_queue_pop_head (&receiver->held);
    held_key_free (held);
  }
}

/**
 * mrtc_olm_media_key_receiver_update_members:
 * @receiver: the receiver
 * @members: (element-type MrtcOlmMember): the call's current members
 *
 * Replaces the member list and delivers held keys of new members.
 */
void
mrtc_olm_media_key_receiver_update_members (
    MrtcOlmMediaKeyReceiver *receiver, GPtrArray *members)
{
  gint64 now = receiver->clock (receiver->clock_data);
  GList *l, *next;
  guint i;

  g_autoptr (GHashTable) current = NULL;
  GHashTableIter iter;
  gpointer key;

  g_ptr_array_set_size (receiver->members, 0);
  for (i = 0; members != NULL && i < members->len; i++)
    g_ptr_array_add (receiver->members,
        mrtc_olm_member_copy (g_ptr_array_index (members, i)));

  /* Forget the ordering state of devices that are no longer members: the
   * map stays bounded by members x 256 indexes. */
  current = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (i = 0; i < receiver->members->len; i++) {
    const MrtcOlmMember *m = g_ptr_array_index (receiver->members, i);

    g_hash_table_add (current, newest_prefix (m->user_id, m->device_id));
  }
  g_hash_table_iter_init (&iter, receiver->newest);
  while (g_hash_table_iter_next (&iter, &key, NULL)) {
    const gchar *index = strrchr (key, MRTC_OLM_SEP[0]);
    g_autofree gchar *prefix = g_strndup (
        key, index != NULL ? (gsize)(index - (gchar *)key) + 1 : 0);

    if (!g_hash_table_contains (current, prefix))
      g_hash_table_iter_remove (&iter);
  }

  expire_held (receiver, now);
  for (l = receiver->held.head; l != NULL; l = next) {
    HeldKey *held = l->data;
    const MrtcOlmMember *member
        = find_member (receiver, held->user_id, held->device_id);

    next = l->next;
    if (member == NULL)
      continue;
    deliver (receiver, member, held->content, held->received);
    g_queue_delete_link (&receiver->held, l);
    held_key_free (held);
  }
}

/**
 * mrtc_olm_media_key_receiver_receive:
 * @receiver: the receiver
 * @event: a to-device event that was Olm-decrypted and verified
 * @error: return location for an error
 *
 * Returns: %TRUE if the key was delivered or held, %FALSE (counted as
 *   dropped) if it was rejected.
 */
gboolean
mrtc_olm_media_key_receiver_receive (MrtcOlmMediaKeyReceiver *receiver,
    const MrtcOlmDecrypted *event, GError **error)
{
  gint64 now = receiver->clock (receiver->clock_data);
  g_autoptr (MrtcOlmMediaKeyContent) content = NULL;
  const MrtcOlmMember *member;
  HeldKey *held;

  if (event == NULL || event->sender_device == NULL
      || g_strcmp0 (event->type, MRTC_OLM_MEDIA_KEY_EVENT_TYPE) != 0) {
    receiver->dropped++;
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "not an %s event", MRTC_OLM_MEDIA_KEY_EVENT_TYPE);
    return FALSE;
  }
  content = mrtc_olm_media_key_content_parse (event->content, error);
  if (content == NULL) {
    receiver->dropped++;
    return FALSE;
  }
  if (g_strcmp0 (content->room_id, receiver->room_id) != 0) {
    receiver->dropped++;
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
        "media key from %s is for another room", event->sender);
    return FALSE;
  }
  if (g_strcmp0 (event->sender, event->sender_device->user_id) != 0
      || g_strcmp0 (content->claimed_device_id, event->sender_device->device_id)
             != 0) {
    receiver->dropped++;
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
        "media key from %s %s claims to be from device %s", event->sender,
        event->sender_device->device_id, content->claimed_device_id);
    return FALSE;
  }

  member
      = find_member (receiver, event->sender, event->sender_device->device_id);
  if (member != NULL) {
    deliver (receiver, member, content, now);
    return TRUE;
  }

  expire_held (receiver, now);
  held = g_new0 (HeldKey, 1);
  held->user_id = g_strdup (event->sender);
  held->device_id = g_strdup (event->sender_device->device_id);
  held->received = now;
  held->content = g_steal_pointer (&content);
  g_queue_push_tail (&receiver->held, held);
  expire_held (receiver, now);
  return TRUE;
}

/**
 * mrtc_olm_media_key_receiver_reject_unencrypted:
 * @receiver: the receiver
 * @sender: the sender of a media key that arrived in clear
 *
 * Counts (and logs) a media key that was not Olm-encrypted: such keys are
 * never used.
 */
void
mrtc_olm_media_key_receiver_reject_unencrypted (
    MrtcOlmMediaKeyReceiver *receiver, const gchar *sender)
{
  g_message ("ignoring a media key sent unencrypted by %s", sender);
  receiver->dropped++;
}

/**
 * mrtc_olm_media_key_receiver_tick:
 * @receiver: the receiver
 *
 * Drops held keys that waited too long for their member.
 */
void
mrtc_olm_media_key_receiver_tick (MrtcOlmMediaKeyReceiver *receiver)
{
  expire_held (receiver, receiver->clock (receiver->clock_data));
}

/**
 * mrtc_olm_media_key_receiver_pop_delivery:
 * @receiver: the receiver
 *
 * Returns: (transfer full) (nullable): the next key for the frame
 *   decryptor.
 */
MrtcOlmMediaKeyDelivery *
mrtc_olm_media_key_receiver_pop_delivery (MrtcOlmMediaKeyReceiver *receiver)
{
  return g_queue_pop_head (&receiver->deliveries);
}

guint
mrtc_olm_media_key_receiver_get_dropped (MrtcOlmMediaKeyReceiver *receiver)
{
  return receiver->dropped;
}

guint
mrtc_olm_media_key_receiver_get_held (MrtcOlmMediaKeyReceiver *receiver)
{
  return g_queue_get_length (&receiver->held);
}

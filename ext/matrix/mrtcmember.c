/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* MatrixRTC membership events: parsing of every accepted shape, slot state,
 * our own contents and the LiveKit identities. No I/O. */

#include "mrtcmember.h"
#include "mrtcjson.h"

#include <math.h>
#include <string.h>

GQuark
mrtc_member_error_quark (void)
{
  return g_quark_from_static_string ("mrtc-member-error-quark");
}

G_DEFINE_BOXED_TYPE (
    MrtcMember, mrtc_member, mrtc_member_ref, mrtc_member_unref);

MrtcMember *
mrtc_member_ref (MrtcMember *member)
{
  g_return_val_if_fail (member != NULL, NULL);
  g_atomic_int_inc (&member->refcount);
  return member;
}

void
mrtc_member_unref (MrtcMember *member)
{
  g_return_if_fail (member != NULL);
  if (!g_atomic_int_dec_and_test (&member->refcount))
    return;
  g_free (member->room_id);
  g_free (member->event_id);
  g_free (member->sender);
  g_free (member->key);
  g_free (member->user_id);
  g_free (member->device_id);
  g_free (member->member_id);
  g_free (member->slot_id);
  g_free (member->application);
  g_free (member->call_intent);
  g_free (member->focus_selection);
  if (member->transports != NULL)
    json_array_unref (member->transports);
  g_strfreev (member->can_subscribe);
  g_free (member->identity);
  g_free (member->leave_reason);
  g_free (member);
}

/* JSON helpers */

const gchar *
mrtc_json_get_string (JsonObject *object, const gchar *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

JsonObject *
mrtc_json_get_object (JsonObject *object, const gchar *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return NULL;
  return json_node_get_object (node);
}

JsonArray *
mrtc_json_get_array (JsonObject *object, const gchar *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    return NULL;
  return json_node_get_array (node);
}

static gboolean
node_get_int (JsonNode *node, gint64 *value)
{
  GType type;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  type = json_node_get_value_type (node);
  if (type == G_TYPE_INT64) {
    *value = json_node_get_int (node);
    return TRUE;
  }
  if (type == G_TYPE_DOUBLE) {
    gdouble d = json_node_get_double (node);

    /* Integral and exactly representable (as JavaScript numbers are). */
    if (!isfinite (d) || d != floor (d) || fabs (d) > 9007199254740991.0)
      return FALSE;
    *value = (gint64)d;
    return TRUE;
  }
  return FALSE;
}

gboolean
mrtc_json_get_int (JsonObject *object, const gchar *name, gint64 *value)
{
  if (object == NULL)
    return FALSE;
  return node_get_int (json_object_get_member (object, name), value);
}

static gboolean
has_member (JsonObject *object, const gchar *name)
{
  return object != NULL && json_object_has_member (object, name);
}

static gboolean
member_is_string_or_absent (JsonObject *object, const gchar *name)
{
  return !has_member (object, name)
         || mrtc_json_get_string (object, name) != NULL;
}

gchar *
mrtc_json_object_to_string (JsonObject *object)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);

  json_node_set_object (node, object);
  return json_to_string (node, FALSE);
}

static gchar *
json_array_to_string (JsonArray *array)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_ARRAY);

  json_node_set_array (node, array);
  return json_to_string (node, FALSE);
}

/* Identifiers */

gboolean
mrtc_is_valid_user_id (const gchar *user_id)
{
  const gchar *colon;
  const gchar *p;

  if (user_id == NULL || user_id[0] != '@' || strlen (user_id) > 255)
    return FALSE;
  colon = strchr (user_id, ':');
  if (colon == NULL || colon == user_id + 1 || colon[1] == '\0')
    return FALSE;
  for (p = colon + 1; *p != '\0'; p++) {
    if (g_ascii_isspace (*p))
      return FALSE;
  }
  return g_utf8_validate (user_id, -1, NULL);
}

gboolean
mrtc_slot_id_split (const gchar *slot_id, gchar **application, gchar **id)
{
  const gchar *hash;

  if (slot_id == NULL)
    return FALSE;
  hash = strchr (slot_id, '#');
  if (hash == NULL || hash == slot_id || strchr (hash + 1, '#') != NULL)
    return FALSE;
  if (application != NULL)
    *application = g_strndup (slot_id, hash - slot_id);
  if (id != NULL)
    *id = g_strdup (hash + 1);
  return TRUE;
}

/* Go's encoding/json string escaping: besides JSON's own escapes it writes
 * <, >, & and U+2028/U+2029 as \u escapes and every byte of invalid UTF-8
 * as \ufffd (lk-jwt-service hashes what json.Marshal produces). */
static void
append_go_json_string (GString *out, const gchar *s)
{
  static const gchar hex[] = "0123456789abcdef";
  const gchar *p = s;
  gsize left = strlen (s);

  g_string_append_c (out, '"');
  while (left > 0) {
    gunichar c = g_utf8_get_char_validated (p, left);
    gsize len;

    if (c == (gunichar)-1 || c == (gunichar)-2) {
      g_string_append (out, "\\ufffd");
      p++;
      left--;
      continue;
    }
    len = g_utf8_next_char (p) - p;
    switch (c) {
      case '"':
        g_string_append (out, "\\\"");
        break;
      case '\\':
        g_string_append (out, "\\\\");
        break;
      case '\n':
        g_string_append (out, "\\n");
        break;
      case '\r':
        g_string_append (out, "\\r");
        break;
      case '\t':
        g_string_append (out, "\\t");
        break;
      case '\b':
        g_string_append (out, "\\b");
        break;
      case '\f':
        g_string_append (out, "\\f");
        break;
      case '<':
      case '>':
      case '&':
      case 0x2028:
      case 0x2029:
        g_string_append_printf (out, "\\u%04x", c);
        break;
      default:
        if (c < 0x20) {
          g_string_append (out, "\\u00");
          g_string_append_c (out, hex[c >> 4]);
          g_string_append_c (out, hex[c & 0xf]);
        } else {
          g_string_append_len (out, p, len);
        }
        break;
    }
    p += len;
    left -= len;
  }
  g_string_append_c (out, '"');
}

gchar *
mrtc_json_string_array_go (const gchar *const *strings)
{
  GString *out = g_string_new ("[");
  guint i;

  for (i = 0; strings[i] != NULL; i++) {
    if (i > 0)
      g_string_append_c (out, ',');
    append_go_json_string (out, strings[i]);
  }
  g_string_append_c (out, ']');
  return g_string_free (out, FALSE);
}

gchar *
mrtc_legacy_identity (const gchar *user_id, const gchar *device_id)
{
  return g_strdup_printf ("%s:%s", user_id, device_id);
}

gchar *
mrtc_sticky_identity (
    const gchar *user_id, const gchar *device_id, const gchar *member_id)
{
  const gchar *parts[] = { user_id, device_id, member_id, NULL };
  g_autofree gchar *json = mrtc_json_string_array_go (parts);
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  guint8 digest[32];
  gsize digest_len = sizeof (digest);
  gchar *b64;
  gsize len;

  g_checksum_update (sum, (const guchar *)json, strlen (json));
  g_checksum_get_digest (sum, digest, &digest_len);
  b64 = g_base64_encode (digest, digest_len);
  len = strlen (b64);
  while (len > 0 && b64[len - 1] == '=')
    b64[--len] = '\0';
  return b64;
}

gchar *
mrtc_new_member_id (void)
{
  return g_uuid_string_random ();
}

/* Transports */

static gboolean
transport_array_valid (JsonArray *array)
{
  guint i, n = json_array_get_length (array);

  for (i = 0; i < n; i++) {
    JsonNode *node = json_array_get_element (array, i);

    if (!JSON_NODE_HOLDS_OBJECT (node)
        || mrtc_json_get_string (json_node_get_object (node), "type") == NULL)
      return FALSE;
  }
  return TRUE;
}

static gboolean
string_array_valid (JsonArray *array)
{
  guint i, n = json_array_get_length (array);

  for (i = 0; i < n; i++) {
    JsonNode *node = json_array_get_element (array, i);

    if (!JSON_NODE_HOLDS_VALUE (node)
        || json_node_get_value_type (node) != G_TYPE_STRING)
      return FALSE;
  }
  return TRUE;
}

static gchar **
string_array_dup (JsonArray *array)
{
  guint i, n = json_array_get_length (array);
  gchar **out = g_new0 (gchar *, n + 1);

  for (i = 0; i < n; i++)
    out[i] = g_strdup (json_array_get_string_element (array, i));
  return out;
}

JsonObject *
mrtc_member_get_transport (MrtcMember *member)
{
  JsonNode *node;

  if (member->transports == NULL
      || json_array_get_length (member->transports) == 0)
    return NULL;
  node = json_array_get_element (member->transports, 0);
  return JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
}

const gchar *
mrtc_member_get_livekit_service_url (MrtcMember *member)
{
  JsonObject *transport = mrtc_member_get_transport (member);

  if (transport == NULL
      || g_strcmp0 (mrtc_json_get_string (transport, "type"), "livekit") != 0)
    return NULL;
  return mrtc_json_get_string (transport, "livekit_service_url");
}

/* Parsing */

#define invalid(error, ...)                                                    \
  g_set_error (error, MRTC_MEMBER_ERROR, MRTC_MEMBER_ERROR_INVALID, __VA_ARGS__)

static gboolean
parse_legacy_content (MrtcMember *m, JsonObject *content, GError **error)
{
  const gchar *device_id, *call_id, *application, *membership_id;
  JsonObject *focus_active;
  JsonArray *foci;
  gint64 created_ts = m->origin_server_ts, expires = 0;
  g_autofree gchar *slot_app = NULL;

  device_id = mrtc_json_get_string (content, "device_id");
  call_id = mrtc_json_get_string (content, "call_id");
  application = mrtc_json_get_string (content, "application");
  focus_active = mrtc_json_get_object (content, "focus_active");

  if (device_id == NULL || *device_id == '\0') {
    invalid (error, "legacy member: device_id must be a non-empty string");
    return FALSE;
  }
  if (call_id == NULL) {
    invalid (error, "legacy member: call_id must be a string");
    return FALSE;
  }
  if (application == NULL || *application == '\0'
      || strchr (application, '#') != NULL || strchr (call_id, '#') != NULL) {
    invalid (error, "legacy member: application must be a string without '#'");
    return FALSE;
  }
  if (focus_active == NULL
      || mrtc_json_get_string (focus_active, "type") == NULL) {
    invalid (error, "legacy member: focus_active.type must be a string");
    return FALSE;
  }
  if (has_member (content, "foci_preferred")) {
    foci = mrtc_json_get_array (content, "foci_preferred");
    if (foci == NULL || !transport_array_valid (foci)) {
      invalid (error, "legacy member: foci_preferred must be an array of "
                      "transport objects");
      return FALSE;
    }
  } else {
    foci = NULL;
  }
  if (has_member (content, "created_ts")
      && (!mrtc_json_get_int (content, "created_ts", &created_ts)
          || created_ts <= 0)) {
    /* json-glib wraps integer literals beyond 64 bits to negative values;
     * a creation time before 1970 is nothing a client writes. */
    invalid (error, "legacy member: created_ts must be a positive number");
    return FALSE;
  }
  if (has_member (content, "expires")
      && (!mrtc_json_get_int (content, "expires", &expires) || expires < 0)) {
    invalid (error, "legacy member: expires must be a non-negative number");
    return FALSE;
  }
  if (!member_is_string_or_absent (content, "scope")
      || !member_is_string_or_absent (content, "m.call.intent")
      || !member_is_string_or_absent (content, "membershipID")
      || !member_is_string_or_absent (focus_active, "focus_selection")) {
    invalid (error, "legacy member: scope, m.call.intent, membershipID and "
                    "focus_selection must be strings");
    return FALSE;
  }

  m->joined = TRUE;
  m->user_id = g_strdup (m->sender);
  m->device_id = g_strdup (device_id);
  membership_id = mrtc_json_get_string (content, "membershipID");
  m->member_id = membership_id != NULL
                     ? g_strdup (membership_id)
                     : mrtc_legacy_identity (m->sender, device_id);
  m->application = g_strdup (application);
  /* call_id "" is the room's call, slot m.call#ROOM (js-sdk's compat rule). */
  m->slot_id = g_strdup_printf ("%s#%s", application,
      (*call_id == '\0' && strcmp (application, "m.call") == 0) ? "ROOM"
                                                                : call_id);
  m->call_intent = g_strdup (mrtc_json_get_string (content, "m.call.intent"));
  m->focus_selection
      = g_strdup (mrtc_json_get_string (focus_active, "focus_selection"));
  m->transports = foci != NULL ? json_array_ref (foci) : json_array_new ();
  m->created_ts = created_ts;
  if (!has_member (content, "expires"))
    expires = MRTC_LEGACY_DEFAULT_EXPIRES_MS;
  /* Overflow-safe: created_ts may be anything origin_server_ts was. */
  if (created_ts > 0 && expires > G_MAXINT64 - created_ts)
    m->expires_ts = G_MAXINT64;
  else
    m->expires_ts = created_ts + expires;
  m->identity = mrtc_legacy_identity (m->sender, device_id);
  return TRUE;
}

/* Legacy contents that are no membership (left): js-sdk counts the keys
 * besides msc4354_sticky_key; only more than one with "application" is a
 * join; a lone "memberships" is the old MSC3401 array form. */
static gboolean
legacy_content_is_left (JsonObject *content)
{
  guint n = json_object_get_size (content);

  if (has_member (content, "msc4354_sticky_key"))
    n--;
  return !(n > 1 && has_member (content, "application"));
}

static gboolean
sticky_content_is_left (JsonObject *content, JsonObject *member)
{
  static const gchar *leave_keys[]
      = { "slot_id", "msc4354_sticky_key", "sticky_key", "leave_reason",
          "disconnect_reason", "m.relates_to", "m.relation", NULL };
  g_autoptr (GList) names = NULL;
  GList *l;

  if (member != NULL
      && g_strcmp0 (mrtc_json_get_string (member, "membership"), "leave") == 0)
    return TRUE;
  if (has_member (content, "disconnect_reason"))
    return TRUE;
  names = json_object_get_members (content);
  for (l = names; l != NULL; l = l->next) {
    if (!g_strv_contains (leave_keys, l->data))
      return FALSE;
  }
  return TRUE;
}

static gchar *
sticky_leave_reason (JsonObject *content)
{
  JsonObject *reason;
  const gchar *code;

  reason = mrtc_json_get_object (content, "leave_reason");
  if (reason != NULL && (code = mrtc_json_get_string (reason, "code")))
    return g_strdup (code);
  reason = mrtc_json_get_object (content, "disconnect_reason");
  if (reason != NULL) {
    if ((code = mrtc_json_get_string (reason, "class")) != NULL
        || (code = mrtc_json_get_string (reason, "reason")) != NULL)
      return g_strdup (code);
  }
  return NULL;
}

static gboolean
parse_sticky_content (MrtcMember *m, JsonObject *content, GError **error)
{
  JsonObject *member, *application, *transports, *relates;
  JsonArray *published = NULL, *can_subscribe = NULL, *versions;
  const gchar *slot_id, *app_type, *user_id, *device_id, *member_id;
  g_autofree gchar *slot_app = NULL;

  member = mrtc_json_get_object (content, "member");
  slot_id = mrtc_json_get_string (content, "slot_id");
  if (has_member (content, "slot_id") && slot_id == NULL) {
    invalid (error, "sticky member: slot_id must be a string");
    return FALSE;
  }
  m->slot_id = g_strdup (slot_id);

  if (sticky_content_is_left (content, member)) {
    m->joined = FALSE;
    m->leave_reason = sticky_leave_reason (content);
    return TRUE;
  }

  /* slot_id "app#id" whose app is application.type */
  application = mrtc_json_get_object (content, "application");
  app_type = mrtc_json_get_string (application, "type");
  if (app_type == NULL || *app_type == '\0' || strchr (app_type, '#')) {
    invalid (error, "sticky member: application.type must be a string "
                    "without '#'");
    return FALSE;
  }
  if (!mrtc_slot_id_split (slot_id, &slot_app, NULL)
      || strcmp (slot_app, app_type) != 0) {
    invalid (error, "sticky member: slot_id must be '%s#<id>' with one '#'",
        app_type);
    return FALSE;
  }

  /* member {user_id|claimed_user_id, device_id|claimed_device_id, id} */
  if (member == NULL) {
    invalid (error, "sticky member: member must be an object");
    return FALSE;
  }
  user_id = mrtc_json_get_string (member, "user_id");
  if (user_id == NULL)
    user_id = mrtc_json_get_string (member, "claimed_user_id");
  device_id = mrtc_json_get_string (member, "device_id");
  if (device_id == NULL)
    device_id = mrtc_json_get_string (member, "claimed_device_id");
  member_id = mrtc_json_get_string (member, "id");
  if (user_id == NULL || !mrtc_is_valid_user_id (user_id)) {
    invalid (error, "sticky member: member.user_id must be a user id");
    return FALSE;
  }
  if (strcmp (user_id, m->sender) != 0) {
    invalid (error, "sticky member: member.user_id %s is not the sender %s",
        user_id, m->sender);
    return FALSE;
  }
  if (device_id == NULL || *device_id == '\0') {
    invalid (error, "sticky member: member.device_id must be a string");
    return FALSE;
  }
  if (member_id == NULL || *member_id == '\0') {
    invalid (error, "sticky member: member.id must be a string");
    return FALSE;
  }
  if (has_member (member, "membership")
      && g_strcmp0 (mrtc_json_get_string (member, "membership"), "join") != 0) {
    invalid (error, "sticky member: member.membership must be join or leave");
    return FALSE;
  }

  /* transports {published[], can_subscribe[]} (js-sdk 43) or
   * rtc_transports[] (js-sdk <= 42, seed) */
  transports = mrtc_json_get_object (content, "transports");
  if (transports != NULL) {
    published = mrtc_json_get_array (transports, "published");
    if (published == NULL || !transport_array_valid (published)) {
      invalid (error, "sticky member: transports.published must be an array "
                      "of transport objects");
      return FALSE;
    }
    if (has_member (transports, "can_subscribe")) {
      can_subscribe = mrtc_json_get_array (transports, "can_subscribe");
      if (can_subscribe == NULL || !string_array_valid (can_subscribe)) {
        invalid (error, "sticky member: transports.can_subscribe must be an "
                        "array of strings");
        return FALSE;
      }
    }
  } else if (has_member (content, "rtc_transports")) {
    published = mrtc_json_get_array (content, "rtc_transports");
    if (published == NULL || !transport_array_valid (published)) {
      invalid (error, "sticky member: rtc_transports must be an array of "
                      "transport objects");
      return FALSE;
    }
  } else {
    invalid (error, "sticky member: no transports");
    return FALSE;
  }

  if (has_member (content, "versions")) {
    versions = mrtc_json_get_array (content, "versions");
    if (versions == NULL || !string_array_valid (versions)) {
      invalid (error, "sticky member: versions must be an array of strings");
      return FALSE;
    }
  }
  if (has_member (content, "m.relates_to")) {
    relates = mrtc_json_get_object (content, "m.relates_to");
    if (relates == NULL || mrtc_json_get_string (relates, "event_id") == NULL
        || g_strcmp0 (mrtc_json_get_string (relates, "rel_type"), "m.reference")
               != 0) {
      invalid (error, "sticky member: m.relates_to must be an m.reference");
      return FALSE;
    }
  }
  if (!member_is_string_or_absent (application, "m.call.intent")) {
    invalid (error, "sticky member: m.call.intent must be a string");
    return FALSE;
  }

  m->joined = TRUE;
  m->user_id = g_strdup (user_id);
  m->device_id = g_strdup (device_id);
  m->member_id = g_strdup (member_id);
  m->application = g_strdup (app_type);
  m->call_intent
      = g_strdup (mrtc_json_get_string (application, "m.call.intent"));
  m->transports = json_array_ref (published);
  m->can_subscribe = can_subscribe != NULL ? string_array_dup (can_subscribe)
                                           : g_new0 (gchar *, 1);
  m->created_ts = m->origin_server_ts;
  m->identity = mrtc_sticky_identity (user_id, device_id, member_id);
  return TRUE;
}

MrtcMember *
mrtc_member_parse_event (
    JsonObject *event, const gchar *room_id, GError **error)
{
  g_autoptr (MrtcMember) m = NULL;
  const gchar *type, *sender, *event_id;
  JsonObject *content;
  gint64 ts = 0;

  g_return_val_if_fail (event != NULL, NULL);

  type = mrtc_json_get_string (event, "type");
  if (type == NULL) {
    invalid (error, "event without a type");
    return NULL;
  }
  m = g_new0 (MrtcMember, 1);
  m->refcount = 1;
  if (strcmp (type, MRTC_EVENT_LEGACY_MEMBER) == 0) {
    m->format = MRTC_MEMBER_FORMAT_LEGACY;
  } else if (strcmp (type, MRTC_EVENT_RTC_MEMBER) == 0
             || strcmp (type, MRTC_EVENT_RTC_MEMBER_STABLE) == 0) {
    m->format = MRTC_MEMBER_FORMAT_STICKY;
  } else {
    g_set_error (error, MRTC_MEMBER_ERROR, MRTC_MEMBER_ERROR_NOT_MEMBER,
        "%s is not a membership event type", type);
    return NULL;
  }

  sender = mrtc_json_get_string (event, "sender");
  if (!mrtc_is_valid_user_id (sender)) {
    invalid (error, "%s event without a valid sender", type);
    return NULL;
  }
  content = mrtc_json_get_object (event, "content");
  if (content == NULL) {
    invalid (error, "%s event from %s without a content object", type, sender);
    return NULL;
  }
  event_id = mrtc_json_get_string (event, "event_id");
  if (has_member (event, "event_id") && event_id == NULL) {
    invalid (error, "%s event from %s: event_id is not a string", type, sender);
    return NULL;
  }
  if (has_member (event, "origin_server_ts")
      && !mrtc_json_get_int (event, "origin_server_ts", &ts)) {
    invalid (error, "%s event from %s: origin_server_ts is not a number", type,
        sender);
    return NULL;
  }

  m->room_id = g_strdup (room_id);
  m->sender = g_strdup (sender);
  m->event_id = g_strdup (event_id);
  m->origin_server_ts = ts;

  if (m->format == MRTC_MEMBER_FORMAT_LEGACY) {
    const gchar *state_key = mrtc_json_get_string (event, "state_key");

    if (state_key == NULL) {
      invalid (
          error, "legacy member event from %s is not a state event", sender);
      return NULL;
    }
    m->key = g_strdup (state_key);
    if (legacy_content_is_left (content)) {
      m->joined = FALSE;
      return g_steal_pointer (&m);
    }
    if (!parse_legacy_content (m, content, error)) {
      g_prefix_error (error, "%s (state key %s): ", sender, state_key);
      return NULL;
    }
  } else {
    const gchar *key = mrtc_json_get_string (content, "msc4354_sticky_key");
    const gchar *key2 = mrtc_json_get_string (content, "sticky_key");

    if ((has_member (content, "msc4354_sticky_key") && key == NULL)
        || (has_member (content, "sticky_key") && key2 == NULL)) {
      invalid (
          error, "sticky member from %s: sticky key is not a string", sender);
      return NULL;
    }
    if (key != NULL && key2 != NULL && strcmp (key, key2) != 0) {
      invalid (error,
          "sticky member from %s: sticky_key and "
          "msc4354_sticky_key differ",
          sender);
      return NULL;
    }
    if (key == NULL)
      key = key2;
    if (key == NULL) {
      invalid (error, "sticky member from %s without a sticky key", sender);
      return NULL;
    }
    m->key = g_strdup (key);
    if (!parse_sticky_content (m, content, error)) {
      g_prefix_error (error, "%s (sticky key %s): ", sender, key);
      return NULL;
    }
  }
  return g_steal_pointer (&m);
}

MrtcMember *
mrtc_member_parse_json (
    const gchar *data, gssize length, const gchar *room_id, GError **error)
{
  g_autoptr (JsonNode) root = NULL;

  if (length < 0)
    length = strlen (data);
  if ((gsize)length > MRTC_MAX_EVENT_SIZE) {
    invalid (error, "event of %" G_GSSIZE_FORMAT " bytes is too big", length);
    return NULL;
  }
  root = mrtc_json_parse (
      data, length, MRTC_MAX_EVENT_SIZE, MRTC_JSON_MAX_DEPTH_ANY, error);
  if (root == NULL)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    invalid (error, "event is not a JSON object");
    return NULL;
  }
  return mrtc_member_parse_event (json_node_get_object (root), room_id, error);
}

gboolean
mrtc_member_same_content (MrtcMember *a, MrtcMember *b)
{
  g_autofree gchar *ta = NULL, *tb = NULL;

  if (a->format != b->format || a->joined != b->joined)
    return FALSE;
  if (g_strcmp0 (a->user_id, b->user_id)
      || g_strcmp0 (a->device_id, b->device_id)
      || g_strcmp0 (a->member_id, b->member_id)
      || g_strcmp0 (a->slot_id, b->slot_id)
      || g_strcmp0 (a->call_intent, b->call_intent)
      || g_strcmp0 (a->focus_selection, b->focus_selection)
      || g_strcmp0 (a->identity, b->identity)
      || g_strcmp0 (a->leave_reason, b->leave_reason))
    return FALSE;
  if ((a->transports == NULL) != (b->transports == NULL))
    return FALSE;
  if (a->transports != NULL) {
    ta = json_array_to_string (a->transports);
    tb = json_array_to_string (b->transports);
    if (strcmp (ta, tb) != 0)
      return FALSE;
  }
  return TRUE;
}

/* Slots */

MrtcSlotStatus
mrtc_slot_parse (JsonObject *content, const gchar *slot_id)
{
  g_autofree gchar *app = NULL;
  JsonObject *application;
  const gchar *status;

  if (content == NULL || !mrtc_slot_id_split (slot_id, &app, NULL))
    return MRTC_SLOT_CLOSED;
  application = mrtc_json_get_object (content, "application");
  if (has_member (content, "status")) {
    status = mrtc_json_get_string (content, "status");
    if (g_strcmp0 (status, "open") != 0)
      return MRTC_SLOT_CLOSED;
  }
  /* open: an application whose type is the slot's application */
  if (application == NULL
      || g_strcmp0 (mrtc_json_get_string (application, "type"), app) != 0)
    return MRTC_SLOT_CLOSED;
  return MRTC_SLOT_OPEN;
}

MrtcSlotStatus
mrtc_slot_parse_jssdk (JsonObject *content, const gchar *slot_id)
{
  /* matrix-js-sdk 43's isSlotClosed(): open only with status "open" and an
   * application object of the slot's application. */
  if (content == NULL
      || g_strcmp0 (mrtc_json_get_string (content, "status"), "open") != 0)
    return MRTC_SLOT_CLOSED;
  return mrtc_slot_parse (content, slot_id);
}

/* Our own contents */

gchar *
mrtc_legacy_state_key (const gchar *user_id, const gchar *device_id,
    const gchar *slot_id, const gchar *room_version)
{
  g_autofree gchar *app = NULL, *id = NULL;
  gboolean no_underscore = FALSE;

  if (!mrtc_slot_id_split (slot_id, &app, &id)) {
    app = g_strdup ("m.call");
    id = g_strdup ("ROOM");
  }
  if (strcmp (app, "m.call") == 0 && strcmp (id, "ROOM") == 0)
    id[0] = '\0';
  if (room_version != NULL
      && (g_str_has_prefix (room_version, "org.matrix.msc3757")
          || g_str_has_prefix (room_version, "org.matrix.msc3779")))
    no_underscore = TRUE;
  return g_strdup_printf (
      "%s%s_%s_%s%s", no_underscore ? "" : "_", user_id, device_id, app, id);
}

static JsonObject *
transport_copy (JsonObject *transport)
{
  JsonObject *out = json_object_new ();
  const gchar *url;

  json_object_set_string_member (out, "type",
      transport != NULL && mrtc_json_get_string (transport, "type")
          ? mrtc_json_get_string (transport, "type")
          : "livekit");
  url = mrtc_json_get_string (transport, "livekit_service_url");
  if (url != NULL)
    json_object_set_string_member (out, "livekit_service_url", url);
  return out;
}

JsonObject *
mrtc_build_legacy_join (const gchar *user_id, const gchar *device_id,
    const gchar *slot_id, JsonObject *transport, gint64 expires_ms,
    gint64 created_ts, const gchar *call_intent)
{
  g_autofree gchar *app = NULL, *id = NULL, *membership_id = NULL;
  JsonObject *content = json_object_new ();
  JsonObject *focus = json_object_new ();
  JsonArray *foci = json_array_new ();

  if (!mrtc_slot_id_split (slot_id, &app, &id)) {
    app = g_strdup ("m.call");
    id = g_strdup ("ROOM");
  }
  json_object_set_string_member (content, "application", app);
  json_object_set_string_member (content, "call_id",
      (strcmp (app, "m.call") == 0 && strcmp (id, "ROOM") == 0) ? "" : id);
  json_object_set_string_member (content, "scope", "m.room");
  json_object_set_string_member (content, "device_id", device_id);
  membership_id = mrtc_legacy_identity (user_id, device_id);
  json_object_set_string_member (content, "membershipID", membership_id);
  json_object_set_int_member (content, "expires", expires_ms);
  if (call_intent != NULL)
    json_object_set_string_member (content, "m.call.intent", call_intent);
  json_object_set_string_member (focus, "type", "livekit");
  json_object_set_string_member (focus, "focus_selection", "multi_sfu");
  json_object_set_object_member (content, "focus_active", focus);
  if (transport != NULL)
    json_array_add_object_element (foci, transport_copy (transport));
  json_object_set_array_member (content, "foci_preferred", foci);
  if (created_ts > 0)
    json_object_set_int_member (content, "created_ts", created_ts);
  return content;
}

JsonObject *
mrtc_build_legacy_leave (void)
{
  return json_object_new ();
}

JsonObject *
mrtc_build_sticky_join (const gchar *user_id, const gchar *device_id,
    const gchar *member_id, const gchar *slot_id, JsonObject *transport,
    const gchar *call_intent)
{
  g_autofree gchar *app = NULL;
  JsonObject *content = json_object_new ();
  JsonObject *application = json_object_new ();
  JsonObject *transports = json_object_new ();
  JsonObject *member = json_object_new ();
  JsonArray *published = json_array_new ();
  JsonArray *can_subscribe = json_array_new ();

  if (!mrtc_slot_id_split (slot_id, &app, NULL))
    app = g_strdup ("m.call");
  json_object_set_string_member (application, "type", app);
  if (call_intent != NULL)
    json_object_set_string_member (application, "m.call.intent", call_intent);
  json_object_set_object_member (content, "application", application);
  json_object_set_string_member (content, "slot_id", slot_id);
  if (transport != NULL)
    json_array_add_object_element (published, transport_copy (transport));
  json_object_set_array_member (transports, "published", published);
  json_array_add_string_element (can_subscribe, "livekit");
  json_object_set_array_member (transports, "can_subscribe", can_subscribe);
  json_object_set_object_member (content, "transports", transports);
  json_object_set_string_member (member, "device_id", device_id);
  json_object_set_string_member (member, "user_id", user_id);
  json_object_set_string_member (member, "id", member_id);
  json_object_set_object_member (content, "member", member);
  json_object_set_array_member (content, "versions", json_array_new ());
  json_object_set_string_member (content, "msc4354_sticky_key", member_id);
  return content;
}

JsonObject *
mrtc_build_sticky_leave (
    const gchar *member_id, const gchar *slot_id, const gchar *reason)
{
  JsonObject *content = json_object_new ();

  json_object_set_string_member (content, "slot_id", slot_id);
  json_object_set_string_member (content, "msc4354_sticky_key", member_id);
  if (reason != NULL) {
    JsonObject *leave_reason = json_object_new ();

    json_object_set_string_member (leave_reason, "code", reason);
    json_object_set_object_member (content, "leave_reason", leave_reason);
  }
  return content;
}

JsonObject *
mrtc_build_slot (
    const gchar *slot_id, gboolean open, gboolean per_member_encryption)
{
  g_autofree gchar *app = NULL;
  JsonObject *content = json_object_new ();

  json_object_set_string_member (content, "status", open ? "open" : "closed");
  if (open) {
    JsonObject *application = json_object_new ();

    if (!mrtc_slot_id_split (slot_id, &app, NULL))
      app = g_strdup ("m.call");
    json_object_set_string_member (application, "type", app);
    json_object_set_object_member (content, "application", application);
    if (per_member_encryption) {
      JsonObject *encryption = json_object_new ();

      json_object_set_string_member (
          encryption, "type", "org.matrix.msc4143.per_member");
      json_object_set_object_member (content, "encryption", encryption);
    }
  }
  return content;
}

/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Unit tests of the slot-shared media key (issue 8) in ext/olm, no I/O:
 * the key event content, the slot's reference, the power check and the
 * schedule (fake clock): switching once a key is decrypted, the grace
 * period, the waiting status and the key request back-off. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <string.h>

#include "mrtcolmslotkeyschedule.h"

static gint64 fake_now;

static gint64
fake_clock (gpointer user_data)
{
  return fake_now;
}

static const guint8 key_a[16]
    = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static const guint8 key_b[16] = { 0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96,
  0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f };

static JsonObject *
parse (const gchar *text)
{
  GError *error = NULL;
  JsonObject *o = mrtc_olm_json_object_from_string (text, -1, &error);

  g_assert_no_error (error);
  return o;
}

static JsonObject *
slot_event (const gchar *type, const gchar *state_key, const gchar *content)
{
  g_autofree gchar *text = g_strdup_printf (
      "{\"type\":\"%s\",\"state_key\":\"%s\",\"sender\":\"@mod:hs\","
      "\"event_id\":\"$slot\",\"content\":%s}",
      type, state_key, content);

  return parse (text);
}

static JsonObject *
open_slot_naming (const gchar *type, const gchar *event_id)
{
  g_autofree gchar *content = g_strdup_printf (
      "{\"status\":\"open\",\"application\":{\"type\":\"m.call\","
      "\"m.shared_key_event\":\"%s\"}}",
      event_id);

  return slot_event (type, "m.call#ROOM", content);
}

/* Two event ids with different indices. */
static void
two_event_ids (gchar **a, gchar **b)
{
  guint i;

  *a = g_strdup ("$keyA");
  for (i = 0;; i++) {
    *b = g_strdup_printf ("$keyB%u", i);
    if (mrtc_olm_slot_key_index_for_event (*b)
        != mrtc_olm_slot_key_index_for_event (*a))
      return;
    g_free (*b);
  }
}

GST_START_TEST (test_content)
{
  guint8 key[16];
  g_autoptr (JsonObject) built = mrtc_olm_slot_key_content_build (key_a);
  GError *error = NULL;
  const gchar *bad[] = {
    "{}",
    "{\"key\":5}",
    "{\"key\":null}",
    "{\"key\":\"\"}",
    /* 15 and 17 bytes */
    "{\"key\":\"AAECAwQFBgcICQoLDA0O\"}",
    "{\"key\":\"AAECAwQFBgcICQoLDA0ODxA\"}",
    /* 32 bytes (a per-member key length) */
    "{\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}",
    /* URL-safe alphabet, bad padding, spaces, junk */
    "{\"key\":\"AQIDBAUGBwgJCgsMDQ4PEA-_\"}",
    "{\"key\":\"AQIDBAUGBwgJCgsMDQ4PEA===\"}",
    "{\"key\":\"AQIDBAUG BwgJCgsMDQ4PEA\"}",
    "{\"key\":\"AQIDBAUGBwgJCgsMDQ4PE!\"}",
  };
  guint i;

  /* Built: unpadded standard base64 of the 16 bytes. */
  fail_unless_equals_string (
      json_object_get_string_member (built, "key"), "AQIDBAUGBwgJCgsMDQ4PEA");
  fail_unless (mrtc_olm_slot_key_content_parse (built, key, &error));
  g_assert_no_error (error);
  fail_unless (memcmp (key, key_a, 16) == 0);

  /* Padded is accepted too. */
  {
    g_autoptr (JsonObject) padded
        = parse ("{\"key\":\"AQIDBAUGBwgJCgsMDQ4PEA==\",\"extra\":1}");

    fail_unless (mrtc_olm_slot_key_content_parse (padded, key, &error));
    g_assert_no_error (error);
    fail_unless (memcmp (key, key_a, 16) == 0);
  }

  fail_if (mrtc_olm_slot_key_content_parse (NULL, key, &error));
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
  g_clear_error (&error);
  for (i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (JsonObject) c = parse (bad[i]);

    fail_if (mrtc_olm_slot_key_content_parse (c, key, &error), "%s", bad[i]);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    GST_INFO ("%s: %s", bad[i], error->message);
    g_clear_error (&error);
  }
  /* The 15-byte key says its length. */
  {
    g_autoptr (JsonObject) c = parse (bad[4]);

    fail_if (mrtc_olm_slot_key_content_parse (c, key, &error));
    fail_unless (
        strstr (error->message, "15 bytes") != NULL, "%s", error->message);
    g_clear_error (&error);
  }
}

GST_END_TEST;

GST_START_TEST (test_reference)
{
  GError *error = NULL;
  gchar *id = NULL;
  const gchar *bad[] = {
    "{\"status\":\"open\",\"application\":\"m.call\"}",
    "{\"status\":\"open\",\"application\":{\"m.shared_key_event\":5}}",
    "{\"status\":\"open\",\"application\":{\"m.shared_key_event\":\"x\"}}",
    "{\"status\":\"open\",\"application\":{\"m.shared_key_event\":\"$\"}}",
    "{\"status\":\"open\",\"application\":{\"m.shared_key_event\":\"$a b\"}}",
  };
  guint i;

  {
    g_autoptr (JsonObject) c = parse ("{\"status\":\"open\",\"application\":{"
                                      "\"type\":\"m.call\"}}");

    fail_unless (mrtc_olm_slot_key_reference_parse (c, &id, &error));
    fail_unless (id == NULL);
  }
  fail_unless (mrtc_olm_slot_key_reference_parse (NULL, &id, &error));
  fail_unless (id == NULL);
  {
    g_autoptr (JsonObject) c = parse (
        "{\"status\":\"open\",\"application\":{\"type\":\"m.call\","
        "\"m.shared_key_event\":\"$abc:hs\"},\"encryption\":{\"type\":\"x\"}}");
    g_autoptr (JsonObject) set = NULL;
    g_autofree gchar *text = NULL;

    fail_unless (mrtc_olm_slot_key_reference_parse (c, &id, &error));
    fail_unless_equals_string (id, "$abc:hs");
    g_clear_pointer (&id, g_free);

    /* Set keeps everything else, and does not touch the original. */
    set = mrtc_olm_slot_key_reference_set (c, "$new", &error);
    g_assert_no_error (error);
    text = mrtc_olm_json_object_to_string (set);
    fail_unless_equals_string (text,
        "{\"status\":\"open\",\"application\":{\"type\":\"m.call\","
        "\"m.shared_key_event\":\"$new\"},\"encryption\":{\"type\":\"x\"}}");
    fail_unless_equals_string (
        json_object_get_string_member (
            json_object_get_object_member (c, "application"),
            "m.shared_key_event"),
        "$abc:hs");
  }
  for (i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (JsonObject) c = parse (bad[i]);

    fail_if (mrtc_olm_slot_key_reference_parse (c, &id, &error), "%s", bad[i]);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    fail_unless (id == NULL);
    g_clear_error (&error);
  }
  /* A closed slot (no application) cannot name a key. */
  {
    g_autoptr (JsonObject) c = parse ("{\"status\":\"closed\"}");

    fail_unless (mrtc_olm_slot_key_reference_set (c, "$x", &error) == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    g_clear_error (&error);
  }
  /* Nor one closed with its application kept, or of another status. */
  {
    const gchar *closed[] = {
      "{\"status\":\"closed\",\"application\":{\"type\":\"m.call\"}}",
      "{\"status\":\"x.paused\",\"application\":{\"type\":\"m.call\"}}",
      "{\"status\":7,\"application\":{\"type\":\"m.call\"}}",
    };

    for (i = 0; i < G_N_ELEMENTS (closed); i++) {
      g_autoptr (JsonObject) c = parse (closed[i]);

      fail_unless (mrtc_olm_slot_key_reference_set (c, "$x", &error) == NULL,
          "%s", closed[i]);
      g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
      g_clear_error (&error);
    }
  }
  /* Index: deterministic, 0..255. */
  fail_unless_equals_int (mrtc_olm_slot_key_index_for_event ("$abc"),
      mrtc_olm_slot_key_index_for_event ("$abc"));
  fail_unless (mrtc_olm_slot_key_index_for_event ("$abc") < 256);
}

GST_END_TEST;

GST_START_TEST (test_power)
{
  g_autoptr (JsonNode) node = json_from_string (
      "[{\"type\":\"m.room.create\",\"state_key\":\"\",\"sender\":\"@c:hs\","
      "\"content\":{\"room_version\":\"10\"}},"
      "{\"type\":\"m.room.power_levels\",\"state_key\":\"\",\"content\":{"
      "\"users\":{\"@c:hs\":100,\"@mod:hs\":50,\"@low:hs\":10},"
      "\"users_default\":0,\"state_default\":50,"
      "\"events\":{\"m.rtc.slot\":100}}}]",
      NULL);
  g_autoptr (JsonNode) v12 = json_from_string (
      "[{\"type\":\"m.room.create\",\"state_key\":\"\",\"sender\":\"@c:hs\","
      "\"content\":{\"room_version\":\"12\","
      "\"additional_creators\":[\"@c2:hs\"]}},"
      "{\"type\":\"m.room.power_levels\",\"state_key\":\"\",\"content\":{"
      "\"users\":{\"@mod:hs\":50}}}]",
      NULL);
  JsonArray *state = json_node_get_array (node);

  fail_unless (mrtc_olm_slot_key_can_send_state (
      state, "@mod:hs", MRTC_OLM_SLOT_EVENT_TYPE));
  fail_if (mrtc_olm_slot_key_can_send_state (
      state, "@low:hs", MRTC_OLM_SLOT_EVENT_TYPE));
  fail_if (mrtc_olm_slot_key_can_send_state (
      state, "@nobody:hs", MRTC_OLM_SLOT_EVENT_TYPE));
  /* events[] overrides state_default. */
  fail_if (mrtc_olm_slot_key_can_send_state (
      state, "@mod:hs", MRTC_OLM_SLOT_EVENT_TYPE_STABLE));
  fail_unless (mrtc_olm_slot_key_can_send_state (
      state, "@c:hs", MRTC_OLM_SLOT_EVENT_TYPE_STABLE));
  /* Room version 12: creators outrank everyone. */
  state = json_node_get_array (v12);
  fail_unless (mrtc_olm_slot_key_can_send_state (
      state, "@c:hs", MRTC_OLM_SLOT_EVENT_TYPE));
  fail_unless (mrtc_olm_slot_key_can_send_state (
      state, "@c2:hs", MRTC_OLM_SLOT_EVENT_TYPE));
  fail_unless (mrtc_olm_slot_key_can_send_state (
      state, "@mod:hs", MRTC_OLM_SLOT_EVENT_TYPE));
  fail_if (mrtc_olm_slot_key_can_send_state (
      state, "@x:hs", MRTC_OLM_SLOT_EVENT_TYPE));
}

GST_END_TEST;

static MrtcOlmSlotKeyChange *
pop (MrtcOlmSlotKeySchedule *s, MrtcOlmSlotKeyChangeKind kind)
{
  MrtcOlmSlotKeyChange *c = mrtc_olm_slot_key_schedule_pop_change (s);

  fail_unless (c != NULL);
  fail_unless_equals_int (c->kind, kind);
  return c;
}

static void
assert_no_change (MrtcOlmSlotKeySchedule *s)
{
  MrtcOlmSlotKeyChange *c = mrtc_olm_slot_key_schedule_pop_change (s);

  fail_unless (
      c == NULL, "unexpected change of kind %d", c ? (gint)c->kind : -1);
}

GST_START_TEST (test_schedule_switch_and_grace)
{
  g_autoptr (MrtcOlmSlotKeySchedule) s
      = mrtc_olm_slot_key_schedule_new (NULL, fake_clock, NULL);
  g_autofree gchar *a = NULL, *b = NULL;
  guint ia, ib;
  guint8 key[16];
  GError *error = NULL;

  two_event_ids (&a, &b);
  ia = mrtc_olm_slot_key_index_for_event (a);
  ib = mrtc_olm_slot_key_index_for_event (b);
  fake_now = 1000;

  /* No slot: no key. */
  mrtc_olm_slot_key_schedule_update (s);
  {
    g_autoptr (MrtcOlmSlotKeyChange) c
        = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS);

    fail_unless_equals_int (c->status, MRTC_OLM_SLOT_KEY_STATUS_NO_KEY);
    fail_unless_equals_string (
        c->message, "slot m.call#ROOM names no shared key event");
  }
  assert_no_change (s);

  /* The slot names A before A is decrypted: waiting, never a key. */
  {
    g_autoptr (JsonObject) ev = open_slot_naming (MRTC_OLM_SLOT_EVENT_TYPE, a);
    g_autoptr (JsonObject) other
        = slot_event (MRTC_OLM_SLOT_EVENT_TYPE, "m.call#OTHER", "{}");

    fail_unless (mrtc_olm_slot_key_schedule_handle_slot_event (s, ev));
    fail_if (mrtc_olm_slot_key_schedule_handle_slot_event (s, other));
  }
  mrtc_olm_slot_key_schedule_update (s);
  {
    g_autoptr (MrtcOlmSlotKeyChange) c
        = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS);
    g_autofree gchar *expect = g_strdup_printf ("waiting for key event %s", a);

    fail_unless_equals_int (c->status, MRTC_OLM_SLOT_KEY_STATUS_WAITING);
    fail_unless_equals_string (c->message, expect);
    fail_unless_equals_string (c->event_id, a);
  }
  assert_no_change (s);
  fail_if (mrtc_olm_slot_key_schedule_lookup (s, ia, key));

  /* A decrypted: current at its index. */
  fail_unless (mrtc_olm_slot_key_schedule_add_key (s, a, key_a, 16, &error));
  mrtc_olm_slot_key_schedule_update (s);
  {
    g_autoptr (MrtcOlmSlotKeyChange) c = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_KEY);

    fail_unless_equals_int (c->index, ia);
    fail_unless (memcmp (c->key, key_a, 16) == 0);
    fail_unless_equals_string (c->event_id, a);
  }
  {
    g_autoptr (MrtcOlmSlotKeyChange) c
        = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS);

    fail_unless_equals_int (c->status, MRTC_OLM_SLOT_KEY_STATUS_READY);
  }
  assert_no_change (s);
  fail_unless (mrtc_olm_slot_key_schedule_lookup (s, ia, key));
  fail_unless (memcmp (key, key_a, 16) == 0);

  /* Rotation: the slot names B; B not decrypted yet: A stays current. */
  fake_now = 5000;
  {
    g_autoptr (JsonObject) ev = open_slot_naming (MRTC_OLM_SLOT_EVENT_TYPE, b);

    mrtc_olm_slot_key_schedule_handle_slot_event (s, ev);
  }
  mrtc_olm_slot_key_schedule_update (s);
  {
    g_autoptr (MrtcOlmSlotKeyChange) c
        = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS);

    fail_unless_equals_int (c->status, MRTC_OLM_SLOT_KEY_STATUS_WAITING);
  }
  fail_unless_equals_string (
      mrtc_olm_slot_key_schedule_get_current (s, NULL, NULL), a);

  /* B decrypted at 6 s: B current, A kept for the grace period. */
  fake_now = 6000;
  fail_unless (mrtc_olm_slot_key_schedule_add_key (s, b, key_b, 16, &error));
  mrtc_olm_slot_key_schedule_update (s);
  {
    g_autoptr (MrtcOlmSlotKeyChange) c = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_KEY);

    fail_unless_equals_int (c->index, ib);
    fail_unless (memcmp (c->key, key_b, 16) == 0);
  }
  mrtc_olm_slot_key_change_free (pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS));
  fail_unless (mrtc_olm_slot_key_schedule_lookup (s, ib, key));
  fail_unless (memcmp (key, key_b, 16) == 0);
  fail_unless (mrtc_olm_slot_key_schedule_lookup (s, ia, key));
  fail_unless (memcmp (key, key_a, 16) == 0);
  fail_unless (mrtc_olm_slot_key_schedule_index_in_use (s, ia));
  fail_unless_equals_int64 (
      mrtc_olm_slot_key_schedule_next_deadline (s), 6000 + 10000);

  /* Just before the end of the grace period, A still decrypts. */
  fake_now = 15999;
  mrtc_olm_slot_key_schedule_update (s);
  assert_no_change (s);
  fail_unless (mrtc_olm_slot_key_schedule_lookup (s, ia, key));

  /* Then it goes. */
  fake_now = 16000;
  mrtc_olm_slot_key_schedule_update (s);
  {
    g_autoptr (MrtcOlmSlotKeyChange) c
        = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_EXPIRED);

    fail_unless_equals_int (c->index, ia);
    fail_unless_equals_string (c->event_id, a);
  }
  assert_no_change (s);
  fail_if (mrtc_olm_slot_key_schedule_lookup (s, ia, key));
  fail_unless (mrtc_olm_slot_key_schedule_lookup (s, ib, key));
  fail_unless_equals_int64 (mrtc_olm_slot_key_schedule_next_deadline (s), -1);
  mrtc_olm_wipe (key, sizeof (key));
}

GST_END_TEST;

GST_START_TEST (test_schedule_slot_types_and_invalid)
{
  g_autoptr (MrtcOlmSlotKeySchedule) s
      = mrtc_olm_slot_key_schedule_new (NULL, fake_clock, NULL);
  g_autofree gchar *a = NULL, *b = NULL;
  GError *error = NULL;
  MrtcOlmSlotKeyChange *c;

  two_event_ids (&a, &b);
  fake_now = 0;
  fail_unless (mrtc_olm_slot_key_schedule_add_key (s, a, key_a, 16, &error));
  fail_unless (mrtc_olm_slot_key_schedule_add_key (s, b, key_b, 16, &error));
  /* The same key again is fine; a different one for the same event is
   * refused. */
  fail_unless (mrtc_olm_slot_key_schedule_add_key (s, a, key_a, 16, &error));
  fail_if (mrtc_olm_slot_key_schedule_add_key (s, a, key_b, 16, &error));
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH);
  g_clear_error (&error);
  fail_if (mrtc_olm_slot_key_schedule_add_key (s, "$c", key_b, 15, &error));
  g_clear_error (&error);
  fail_if (mrtc_olm_slot_key_schedule_add_key (s, "c", key_b, 16, &error));
  g_clear_error (&error);

  /* The stable slot alone decides... */
  {
    g_autoptr (JsonObject) ev
        = open_slot_naming (MRTC_OLM_SLOT_EVENT_TYPE_STABLE, a);

    fail_unless (mrtc_olm_slot_key_schedule_handle_slot_event (s, ev));
  }
  mrtc_olm_slot_key_schedule_update (s);
  fail_unless_equals_string (
      mrtc_olm_slot_key_schedule_get_current (s, NULL, NULL), a);
  fail_unless_equals_string (
      mrtc_olm_slot_key_schedule_get_slot_type (s), "m.rtc.slot");
  while ((c = mrtc_olm_slot_key_schedule_pop_change (s)) != NULL)
    mrtc_olm_slot_key_change_free (c);

  /* ...until there is an unstable one, which takes precedence. */
  {
    g_autoptr (JsonObject) ev = open_slot_naming (MRTC_OLM_SLOT_EVENT_TYPE, b);

    mrtc_olm_slot_key_schedule_handle_slot_event (s, ev);
  }
  mrtc_olm_slot_key_schedule_update (s);
  fail_unless_equals_string (
      mrtc_olm_slot_key_schedule_get_current (s, NULL, NULL), b);
  while ((c = mrtc_olm_slot_key_schedule_pop_change (s)) != NULL)
    mrtc_olm_slot_key_change_free (c);

  /* The unstable one emptied: back to the stable one (A again). */
  {
    g_autoptr (JsonObject) ev
        = slot_event (MRTC_OLM_SLOT_EVENT_TYPE, "m.call#ROOM", "{}");

    mrtc_olm_slot_key_schedule_handle_slot_event (s, ev);
  }
  mrtc_olm_slot_key_schedule_update (s);
  fail_unless_equals_string (
      mrtc_olm_slot_key_schedule_get_current (s, NULL, NULL), a);
  while ((c = mrtc_olm_slot_key_schedule_pop_change (s)) != NULL)
    mrtc_olm_slot_key_change_free (c);

  /* A malformed reference: invalid, the last key stays. */
  {
    g_autoptr (JsonObject) ev
        = slot_event (MRTC_OLM_SLOT_EVENT_TYPE, "m.call#ROOM",
            "{\"status\":\"open\",\"application\":{\"m.shared_key_event\":7}}");

    mrtc_olm_slot_key_schedule_handle_slot_event (s, ev);
  }
  mrtc_olm_slot_key_schedule_update (s);
  c = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS);
  fail_unless_equals_int (c->status, MRTC_OLM_SLOT_KEY_STATUS_INVALID);
  mrtc_olm_slot_key_change_free (c);
  fail_unless_equals_string (
      mrtc_olm_slot_key_schedule_get_current (s, NULL, NULL), a);

  /* A rejected event (e.g. sent in clear): invalid, no requests. */
  {
    g_autoptr (JsonObject) ev
        = open_slot_naming (MRTC_OLM_SLOT_EVENT_TYPE, "$plain");

    mrtc_olm_slot_key_schedule_handle_slot_event (s, ev);
  }
  mrtc_olm_slot_key_schedule_reject (s, "$plain", "it is not encrypted");
  mrtc_olm_slot_key_schedule_update (s);
  c = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS);
  fail_unless_equals_int (c->status, MRTC_OLM_SLOT_KEY_STATUS_INVALID);
  fail_unless (strstr (c->message, "not encrypted") != NULL);
  mrtc_olm_slot_key_change_free (c);
  fake_now = 100000;
  fail_unless (mrtc_olm_slot_key_schedule_take_request (s) == NULL);
}

GST_END_TEST;

GST_START_TEST (test_schedule_requests_backoff)
{
  g_autoptr (MrtcOlmSlotKeySchedule) s
      = mrtc_olm_slot_key_schedule_new (NULL, fake_clock, NULL);
  gint64 expect[] = { 500, 1000, 2000, 4000, 8000, 16000, 32000, 62000 };
  gchar *req;
  guint i;
  GError *error = NULL;

  fake_now = 0;
  {
    g_autoptr (JsonObject) ev
        = open_slot_naming (MRTC_OLM_SLOT_EVENT_TYPE, "$missing");

    mrtc_olm_slot_key_schedule_handle_slot_event (s, ev);
  }
  mrtc_olm_slot_key_schedule_update (s);
  mrtc_olm_slot_key_change_free (pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS));
  fail_unless (mrtc_olm_slot_key_schedule_take_request (s) == NULL);
  /* 500 ms, then doubling up to 30 s. */
  for (i = 0; i < G_N_ELEMENTS (expect); i++) {
    fail_unless_equals_int64 (
        mrtc_olm_slot_key_schedule_next_deadline (s), expect[i]);
    fake_now = expect[i] - 1;
    fail_unless (mrtc_olm_slot_key_schedule_take_request (s) == NULL);
    fake_now = expect[i];
    req = mrtc_olm_slot_key_schedule_take_request (s);
    fail_unless_equals_string (req, "$missing");
    g_free (req);
    /* Still waiting: the status does not change with the requests. */
    mrtc_olm_slot_key_schedule_update (s);
    assert_no_change (s);
  }
  fail_unless_equals_int (
      mrtc_olm_slot_key_schedule_get_requests (s), G_N_ELEMENTS (expect));

  /* The key comes: requests stop. */
  fail_unless (
      mrtc_olm_slot_key_schedule_add_key (s, "$missing", key_a, 16, &error));
  mrtc_olm_slot_key_schedule_update (s);
  mrtc_olm_slot_key_change_free (pop (s, MRTC_OLM_SLOT_KEY_CHANGE_KEY));
  mrtc_olm_slot_key_change_free (pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS));
  fake_now += 100000;
  fail_unless (mrtc_olm_slot_key_schedule_take_request (s) == NULL);
  fail_unless_equals_int64 (mrtc_olm_slot_key_schedule_next_deadline (s), -1);
}

GST_END_TEST;

/* Three rotations in a row: only the last two keys are usable; with a
 * short grace period the previous one goes on time. */
GST_START_TEST (test_schedule_fast_rotations)
{
  g_autoptr (MrtcOlmSlotKeySchedule) s
      = mrtc_olm_slot_key_schedule_new (NULL, fake_clock, NULL);
  gchar *ids[3];
  guint idx[3];
  guint i, n = 0;
  GError *error = NULL;
  MrtcOlmSlotKeyChange *c;
  guint8 keys[3][16];

  /* Three ids with three different indices. */
  for (i = 0; n < 3; i++) {
    gchar *id = g_strdup_printf ("$rot%u", i);
    guint ix = mrtc_olm_slot_key_index_for_event (id);
    guint j;
    gboolean dup = FALSE;

    for (j = 0; j < n; j++)
      dup |= idx[j] == ix;
    if (dup) {
      g_free (id);
      continue;
    }
    ids[n] = id;
    idx[n] = ix;
    memset (keys[n], 0x11 * (n + 1), 16);
    n++;
  }
  mrtc_olm_slot_key_schedule_set_grace (s, 2000);
  fake_now = 0;
  for (i = 0; i < 3; i++) {
    g_autoptr (JsonObject) ev
        = open_slot_naming (MRTC_OLM_SLOT_EVENT_TYPE, ids[i]);

    fake_now += 100;
    fail_unless (
        mrtc_olm_slot_key_schedule_add_key (s, ids[i], keys[i], 16, &error));
    mrtc_olm_slot_key_schedule_handle_slot_event (s, ev);
    mrtc_olm_slot_key_schedule_update (s);
  }
  /* KEY 0, READY, KEY 1, READY, EXPIRED 0, KEY 2, READY. */
  c = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_KEY);
  fail_unless_equals_int (c->index, idx[0]);
  mrtc_olm_slot_key_change_free (c);
  mrtc_olm_slot_key_change_free (pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS));
  c = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_KEY);
  fail_unless_equals_int (c->index, idx[1]);
  mrtc_olm_slot_key_change_free (c);
  mrtc_olm_slot_key_change_free (pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS));
  c = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_EXPIRED);
  fail_unless_equals_int (c->index, idx[0]);
  mrtc_olm_slot_key_change_free (c);
  c = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_KEY);
  fail_unless_equals_int (c->index, idx[2]);
  mrtc_olm_slot_key_change_free (c);
  mrtc_olm_slot_key_change_free (pop (s, MRTC_OLM_SLOT_KEY_CHANGE_STATUS));
  assert_no_change (s);
  fail_if (mrtc_olm_slot_key_schedule_lookup (s, idx[0], NULL));
  fail_unless (mrtc_olm_slot_key_schedule_lookup (s, idx[1], NULL));
  fail_unless (mrtc_olm_slot_key_schedule_lookup (s, idx[2], NULL));
  fake_now = 300 + 2000;
  mrtc_olm_slot_key_schedule_update (s);
  c = pop (s, MRTC_OLM_SLOT_KEY_CHANGE_EXPIRED);
  fail_unless_equals_int (c->index, idx[1]);
  mrtc_olm_slot_key_change_free (c);
  for (i = 0; i < 3; i++)
    g_free (ids[i]);
}

GST_END_TEST;

/* Keys never reach the log, whatever the level. */
static GString *log_text;

static GLogWriterOutput
capture_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
    gpointer user_data)
{
  gsize i;

  for (i = 0; i < n_fields; i++)
    if (g_strcmp0 (fields[i].key, "MESSAGE") == 0)
      g_string_append_printf (log_text, "%s\n", (const gchar *)fields[i].value);
  return G_LOG_WRITER_HANDLED;
}

GST_START_TEST (test_no_key_in_logs)
{
  g_autoptr (MrtcOlmSlotKeySchedule) s
      = mrtc_olm_slot_key_schedule_new (NULL, fake_clock, NULL);
  g_autofree gchar *b64 = g_base64_encode (key_b, 16);
  GError *error = NULL;
  MrtcOlmSlotKeyChange *c;
  guint8 key[16];

  log_text = g_string_new (NULL);
  g_log_set_writer_func (capture_writer, NULL, NULL);
  g_setenv ("G_MESSAGES_DEBUG", "all", TRUE);
  gst_debug_set_default_threshold (GST_LEVEL_MEMDUMP);
  {
    g_autoptr (JsonObject) content = mrtc_olm_slot_key_content_build (key_b);
    g_autoptr (JsonObject) ev
        = open_slot_naming (MRTC_OLM_SLOT_EVENT_TYPE, "$k");

    fail_unless (mrtc_olm_slot_key_content_parse (content, key, &error));
    mrtc_olm_slot_key_schedule_add_key (s, "$k", key, 16, &error);
    mrtc_olm_slot_key_schedule_handle_slot_event (s, ev);
    mrtc_olm_slot_key_schedule_update (s);
    while ((c = mrtc_olm_slot_key_schedule_pop_change (s)) != NULL) {
      g_debug ("change %d index %u event %s status %s", c->kind, c->index,
          c->event_id, c->message);
      mrtc_olm_slot_key_change_free (c);
    }
  }
  b64[22] = '\0';
  fail_if (strstr (log_text->str, b64) != NULL);
  g_string_free (log_text, TRUE);
}

GST_END_TEST;

static Suite *
olmslotkey_suite (void)
{
  Suite *s = suite_create ("olmslotkey");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_content);
  tcase_add_test (tc, test_reference);
  tcase_add_test (tc, test_power);
  tcase_add_test (tc, test_schedule_switch_and_grace);
  tcase_add_test (tc, test_schedule_slot_types_and_invalid);
  tcase_add_test (tc, test_schedule_requests_backoff);
  tcase_add_test (tc, test_schedule_fast_rotations);
  tcase_add_test (tc, test_no_key_in_logs);
  return s;
}

GST_CHECK_MAIN (olmslotkey);

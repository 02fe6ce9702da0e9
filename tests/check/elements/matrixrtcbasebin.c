/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* The call participant elements' shared properties: defaults, write-only
 * secrets, validation on NULL→READY with clear errors, and start()/stop()
 * on READY↔PAUSED. A test subclass stands in for the elements. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <string.h>

#include "gstmatrixrtcbasebin.h"

#define TEST_SECRET "s3cr3t-never-shown"

typedef struct
{
  GstMatrixRtcBaseBin parent;
  guint starts, stops;
  gchar *started_room;
  gchar *started_password;
} TestRtcBin;

typedef struct
{
  GstMatrixRtcBaseBinClass parent_class;
} TestRtcBinClass;

GType test_rtc_bin_get_type (void);
G_DEFINE_TYPE (TestRtcBin, test_rtc_bin, GST_TYPE_MATRIX_RTC_BASE_BIN);

static gboolean
test_rtc_bin_start (
    GstMatrixRtcBaseBin *base, const GstMatrixRtcSettings *settings)
{
  TestRtcBin *self = (TestRtcBin *)base;

  self->starts++;
  g_free (self->started_room);
  g_free (self->started_password);
  self->started_room = g_strdup (settings->room);
  self->started_password = g_strdup (settings->password);
  return TRUE;
}

static void
test_rtc_bin_stop (GstMatrixRtcBaseBin *base)
{
  ((TestRtcBin *)base)->stops++;
}

static void
test_rtc_bin_finalize (GObject *object)
{
  TestRtcBin *self = (TestRtcBin *)object;

  g_free (self->started_room);
  g_free (self->started_password);
  G_OBJECT_CLASS (test_rtc_bin_parent_class)->finalize (object);
}

static void
test_rtc_bin_init (TestRtcBin *self)
{
}

static void
test_rtc_bin_class_init (TestRtcBinClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = test_rtc_bin_finalize;
  GST_MATRIX_RTC_BASE_BIN_CLASS (klass)->start = test_rtc_bin_start;
  GST_MATRIX_RTC_BASE_BIN_CLASS (klass)->stop = test_rtc_bin_stop;
  gst_element_class_set_static_metadata (GST_ELEMENT_CLASS (klass),
      "Test RTC bin", "Generic", "test", "gst-matrixrtc");
}

static GstElement *
new_valid_bin (void)
{
  return g_object_new (test_rtc_bin_get_type (), "homeserver",
      "http://127.0.0.1:8008", "user-id", "@alice:localhost:8448", "password",
      TEST_SECRET, "room", "!room:localhost:8448", NULL);
}

/* The error posted when going to READY, or NULL when it succeeded. */
static gchar *
ready_error (GstElement *element)
{
  GstBus *bus = gst_bus_new ();
  GstStateChangeReturn ret;
  gchar *text = NULL;
  GstMessage *msg;

  gst_element_set_bus (element, bus);
  ret = gst_element_set_state (element, GST_STATE_READY);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    GError *error = NULL;

    fail_unless (msg != NULL, "a failed state change posts an error");
    gst_message_parse_error (msg, &error, NULL);
    fail_unless (error->domain == GST_RESOURCE_ERROR);
    text = g_strdup (error->message);
    g_error_free (error);
  } else {
    fail_unless (msg == NULL);
  }
  if (msg)
    gst_message_unref (msg);
  gst_element_set_state (element, GST_STATE_NULL);
  gst_element_set_bus (element, NULL);
  gst_object_unref (bus);
  return text;
}

GST_START_TEST (test_defaults_and_secrets)
{
  GstElement *bin = new_valid_bin ();
  GObjectClass *klass = G_OBJECT_GET_CLASS (bin);
  const gchar *secrets[] = { "password", "access-token", "passphrase",
    "livekit-api-secret", "livekit-token", "turn-server", NULL };
  gchar *slot, *application;
  guint leave_delay, i;
  gint format, e2ee;

  g_object_get (bin, "slot", &slot, "application", &application, "leave-delay",
      &leave_delay, "membership-format", &format, "e2ee-mode", &e2ee, NULL);
  fail_unless_equals_string (slot, "m.call#ROOM");
  fail_unless_equals_string (application, "m.call");
  fail_unless_equals_int (leave_delay, 18000);
  fail_unless_equals_int (format, GST_MATRIX_RTC_MEMBERSHIP_FORMAT_AUTO);
  fail_unless_equals_int (e2ee, GST_MATRIX_RTC_E2EE_MODE_AUTO);
  g_free (slot);
  g_free (application);

  for (i = 0; secrets[i] != NULL; i++) {
    GParamSpec *pspec = g_object_class_find_property (klass, secrets[i]);

    fail_unless (pspec != NULL, "no property %s", secrets[i]);
    fail_if (pspec->flags & G_PARAM_READABLE, "%s is readable", secrets[i]);
    fail_unless (pspec->flags & G_PARAM_WRITABLE);
  }
  gst_object_unref (bin);
}

GST_END_TEST;

GST_START_TEST (test_start_stop)
{
  GstElement *bin = new_valid_bin ();
  TestRtcBin *test = (TestRtcBin *)bin;

  fail_unless_equals_int (
      gst_element_set_state (bin, GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
  fail_unless_equals_int (test->starts, 1);
  fail_unless_equals_string (test->started_room, "!room:localhost:8448");
  fail_unless_equals_string (test->started_password, TEST_SECRET);
  fail_unless_equals_int (test->stops, 0);
  fail_unless_equals_int (
      gst_element_set_state (bin, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  fail_unless_equals_int (test->stops, 1);
  gst_object_unref (bin);
}

GST_END_TEST;

typedef struct
{
  const gchar *property;
  const gchar *value;
  const gchar *expected; /* in the error message */
} BadSetting;

GST_START_TEST (test_validation_errors)
{
  const BadSetting cases[] = {
    { "homeserver", NULL, "No homeserver set" },
    { "homeserver", "matrix.example.org", "not an http:// or https:// URL" },
    { "homeserver", "ftp://matrix.example.org", "not an http" },
    { "user-id", "alice", "not a Matrix user id" },
    { "user-id", "@:server", "not a Matrix user id" },
    { "password", NULL, "No credentials" },
    { "room", NULL, "No room set" },
    { "room", "room-without-sigil", "neither a room id" },
    { "room", "!nocolon", "neither a room id" },
    { "slot", "nohash", "APPLICATION#NAME" },
    { "slot", "#ROOM", "APPLICATION#NAME" },
    { "token-service", "not a url", "\"token-service\" property is not" },
    { "livekit-url", "ws://127.0.0.1:7880", "needs either \"livekit-token\"" },
    { "livekit-url", "gopher://x", "\"livekit-url\" property is not" },
    { "livekit-api-key", "key", "without \"livekit-url\"" },
    { "stun-server", "127.0.0.1:3478", "stun://host:port" },
    { "turn-server", "udp://user:" TEST_SECRET "@h:1", "turn(s)://" },
    { "access-token", "token", "Both \"access-token\" and \"password\"" },
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++) {
    GstElement *bin = new_valid_bin ();
    gchar *message;

    g_object_set (bin, cases[i].property, cases[i].value, NULL);
    message = ready_error (bin);
    fail_unless (message != NULL, "setting %s=%s was accepted",
        cases[i].property, cases[i].value);
    fail_unless (strstr (message, cases[i].expected) != NULL,
        "setting %s: message '%s' does not say '%s'", cases[i].property,
        message, cases[i].expected);
    fail_if (strstr (message, TEST_SECRET) != NULL,
        "the error quotes a secret: %s", message);
    g_free (message);
    gst_object_unref (bin);
  }
}

GST_END_TEST;

GST_START_TEST (test_validation_combinations)
{
  GstElement *bin;
  gchar *message;

  /* An access token alone is enough. */
  bin = new_valid_bin ();
  g_object_set (bin, "password", NULL, "user-id", NULL, "access-token",
      TEST_SECRET, "device-id", "DEV", NULL);
  fail_unless (ready_error (bin) == NULL);
  gst_object_unref (bin);

  /* A password without a user. */
  bin = new_valid_bin ();
  g_object_set (bin, "user-id", NULL, NULL);
  message = ready_error (bin);
  fail_unless (message && strstr (message, "needs the \"user-id\""));
  g_free (message);
  gst_object_unref (bin);

  /* Passphrase mode without a passphrase, and a passphrase with e2ee off. */
  bin = new_valid_bin ();
  gst_util_set_object_arg (G_OBJECT (bin), "e2ee-mode", "passphrase");
  message = ready_error (bin);
  fail_unless (message && strstr (message, "no \"passphrase\" is set"));
  g_free (message);
  g_object_set (bin, "passphrase", TEST_SECRET, NULL);
  fail_unless (ready_error (bin) == NULL);
  gst_util_set_object_arg (G_OBJECT (bin), "e2ee-mode", "none");
  message = ready_error (bin);
  fail_unless (message && strstr (message, "\"e2ee-mode\" is none"));
  fail_if (strstr (message, TEST_SECRET));
  g_free (message);
  gst_object_unref (bin);

  /* A LiveKit URL with a key and secret, or with a token; not both. */
  bin = new_valid_bin ();
  g_object_set (bin, "livekit-url", "ws://127.0.0.1:7880", "livekit-api-key",
      "devkey", "livekit-api-secret", TEST_SECRET, NULL);
  fail_unless (ready_error (bin) == NULL);
  g_object_set (bin, "livekit-token", "jwt", NULL);
  message = ready_error (bin);
  fail_unless (message && strstr (message, "set only one of them"));
  g_free (message);
  g_object_set (bin, "livekit-api-key", NULL, "livekit-api-secret", NULL, NULL);
  fail_unless (ready_error (bin) == NULL);
  g_object_set (bin, "token-service", "http://127.0.0.1:8080", NULL);
  message = ready_error (bin);
  fail_unless (message && strstr (message, "Both \"token-service\""));
  g_free (message);
  gst_object_unref (bin);

  /* Alias rooms, custom slots, STUN and TURN URLs are fine. */
  bin = new_valid_bin ();
  g_object_set (bin, "room", "#call:localhost:8448", "slot", "m.call#other",
      "stun-server", "stun://127.0.0.1:3478", "turn-server",
      "turns://u:" TEST_SECRET "@127.0.0.1:5349", NULL);
  fail_unless (ready_error (bin) == NULL);
  /* Room version 12 ids have no server name (MSC4291): '!' and 43
   * URL-safe base64 characters. */
  g_object_set (
      bin, "room", "!JUwK7Uf6maUupulUoAC1E-f0rbnAe26aZsHmPjwFjIw", NULL);
  fail_unless (ready_error (bin) == NULL);
  g_object_set (
      bin, "room", "!JUwK7Uf6maUupulUoAC1E-f0rbnAe26aZsHmPjwFjI", NULL);
  message = ready_error (bin);
  fail_unless (message && strstr (message, "neither a room id"));
  g_free (message);
  g_object_set (
      bin, "room", "!JUwK7Uf6maUupulUoAC1E+f0rbnAe26aZsHmPjwFjIw", NULL);
  message = ready_error (bin);
  fail_unless (message && strstr (message, "neither a room id"));
  g_free (message);
  gst_object_unref (bin);
}

GST_END_TEST;

static Suite *
matrixrtcbasebin_suite (void)
{
  Suite *s = suite_create ("matrixrtcbasebin");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_defaults_and_secrets);
  tcase_add_test (tc, test_start_stop);
  tcase_add_test (tc, test_validation_errors);
  tcase_add_test (tc, test_validation_combinations);
  return s;
}

GST_CHECK_MAIN (matrixrtcbasebin);

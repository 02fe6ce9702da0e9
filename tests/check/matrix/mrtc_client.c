/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Faults a real homeserver of the local stack does not produce on demand
 * (its rate limits are off, and other tests share it so it cannot be
 * restarted): a loopback SoupServer answers /sync with 429 + retry_after_ms,
 * a 502 and garbage, then goes away and comes back on the same port. The
 * client must back off, honour retry_after_ms, keep its since token and
 * resume. Everything else runs against the real Synapse in
 * tests/integration/matrix/. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <libsoup/soup.h>
#include <string.h>

#include "mrtcclient.h"

typedef struct
{
  GMutex lock;
  guint n_requests;
  gint64 times[32];
  gchar *since[32];
  gchar *auth[32];
} FakeHs;

static void
respond (
    SoupServerMessage *msg, guint status, const gchar *type, const gchar *body)
{
  soup_server_message_set_response (
      msg, type, SOUP_MEMORY_COPY, body, strlen (body));
  soup_server_message_set_status (msg, status, NULL);
}

static void
sync_handler (SoupServer *server, SoupServerMessage *msg, const char *path,
    GHashTable *query, gpointer data)
{
  FakeHs *hs = data;
  guint n;
  const gchar *since = query ? g_hash_table_lookup (query, "since") : NULL;
  const gchar *auth = soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), "Authorization");

  g_mutex_lock (&hs->lock);
  n = hs->n_requests++;
  if (n < G_N_ELEMENTS (hs->times)) {
    hs->times[n] = g_get_monotonic_time ();
    hs->since[n] = g_strdup (since);
    hs->auth[n] = g_strdup (auth);
  }
  g_mutex_unlock (&hs->lock);

  switch (n) {
    case 0:
      respond (msg, 429, "application/json",
          "{\"errcode\":"
          "\"M_LIMIT_EXCEEDED\",\"error\":\"Too many requests\","
          "\"retry_after_ms\":400}");
      break;
    case 1:
      respond (msg, 200, "application/json", "{\"next_batch\":\"s1\"}");
      break;
    case 2:
      respond (msg, 502, "text/html", "<html>bad gateway</html>");
      break;
    case 3:
      /* 200 with a body that is not JSON */
      respond (msg, 200, "application/json", "{\"next_batch\":");
      break;
    default:
      respond (msg, 200, "application/json",
          "{\"next_batch\":\"s2\","
          "\"to_device\":{\"events\":[{\"type\":\"org.example\","
          "\"sender\":\"@a:b\",\"content\":{}}, 5, \"junk\"]},"
          "\"rooms\":{\"join\":{\"!r:b\":{\"timeline\":{\"events\":"
          "[1,{\"type\":\"x\"}]},\"msc4354_sticky\":{\"events\":"
          "\"junk\"}}}}}");
      break;
  }
}

static guint
n_requests (FakeHs *hs)
{
  guint n;

  g_mutex_lock (&hs->lock);
  n = hs->n_requests;
  g_mutex_unlock (&hs->lock);
  return n;
}

static void
iterate_until (FakeHs *hs, guint n, guint seconds)
{
  gint64 end = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;

  while (n_requests (hs) < n && g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, FALSE) || (g_usleep (2000), TRUE);
  fail_unless (n_requests (hs) >= n, "only %u sync requests (wanted %u)",
      n_requests (hs), n);
}

static void
on_sync_error (MrtcClient *client, GError *error, GAsyncQueue *q)
{
  g_async_queue_push (q, g_strdup (error->message));
}

static void
on_to_device (MrtcClient *client, JsonObject *ev, gint *count)
{
  g_atomic_int_inc (count);
}

GST_START_TEST (test_sync_backoff_and_resume)
{
  FakeHs hs = {
    0,
  };
  g_autoptr (SoupServer) server = soup_server_new (NULL, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncQueue) errors = g_async_queue_new_full (g_free);
  g_autoptr (MrtcClient) client = NULL;
  g_autofree gchar *url = NULL;
  GSList *uris;
  guint port, i, n_errors = 0;
  gint to_device = 0;
  gchar *msg;

  g_mutex_init (&hs.lock);
  soup_server_add_handler (
      server, "/_matrix/client/v3/sync", sync_handler, &hs, NULL);
  fail_unless (soup_server_listen_local (
                   server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error),
      "%s", error->message);
  uris = soup_server_get_uris (server);
  port = g_uri_get_port (uris->data);
  g_slist_free_full (uris, (GDestroyNotify)g_uri_unref);
  url = g_strdup_printf ("http://127.0.0.1:%u", port);

  client = mrtc_client_new (url);
  g_signal_connect (client, "sync-error", G_CALLBACK (on_sync_error), errors);
  g_signal_connect (client, "to-device", G_CALLBACK (on_to_device), &to_device);
  mrtc_client_start_sync (client, 100);

  /* 429 -> retried after retry_after_ms inside the call; then s1; 502 and
   * garbage are errors the loop backs off from; then s2 */
  iterate_until (&hs, 5, 20);
  fail_unless (hs.times[1] - hs.times[0] >= 400 * 1000,
      "retry_after_ms not honoured (%" G_GINT64_FORMAT " us)",
      hs.times[1] - hs.times[0]);
  fail_unless (hs.since[0] == NULL && hs.since[1] == NULL);
  fail_unless_equals_string (hs.since[2], "s1");
  fail_unless_equals_string (hs.since[3], "s1");
  fail_unless_equals_string (hs.since[4], "s1");
  /* backing off: the third error-free request came after a delay */
  fail_unless (hs.times[3] - hs.times[2] >= 400 * 1000);
  fail_unless (hs.times[4] - hs.times[3] >= 400 * 1000);
  iterate_until (&hs, 6, 20);
  fail_unless_equals_string (hs.since[5], "s2");
  /* malformed parts of a sync response are skipped */
  fail_unless (g_atomic_int_get (&to_device) >= 1);
  while ((msg = g_async_queue_try_pop (errors)) != NULL) {
    GST_INFO ("sync error: %s", msg);
    n_errors++;
    g_free (msg);
  }
  fail_unless (n_errors >= 2, "%u sync errors", n_errors);

  /* the homeserver goes away for a while and comes back on its port */
  soup_server_disconnect (server);
  {
    gint64 end = g_get_monotonic_time () + 1500 * 1000;
    guint before_errors = 0;

    while (g_get_monotonic_time () < end) {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (5000);
      while ((msg = g_async_queue_try_pop (errors)) != NULL) {
        before_errors++;
        g_free (msg);
      }
    }
    fail_unless (before_errors >= 1, "no error while the server was down");
  }
  g_mutex_lock (&hs.lock);
  i = hs.n_requests;
  g_mutex_unlock (&hs.lock);
  soup_server_add_handler (
      server, "/_matrix/client/v3/sync", sync_handler, &hs, NULL);
  fail_unless (soup_server_listen_local (
                   server, port, SOUP_SERVER_LISTEN_IPV4_ONLY, &error),
      "%s", error ? error->message : "");
  iterate_until (&hs, i + 2, 20);
  fail_unless (hs.since[i] != NULL);
  fail_unless_equals_string (hs.since[i + 1], "s2");
  fail_unless (mrtc_client_get_sync_count (client) >= 3);

  mrtc_client_stop_sync (client);
  /* no request carried a token: the client was never logged in */
  for (i = 0; i < MIN (hs.n_requests, G_N_ELEMENTS (hs.auth)); i++) {
    fail_unless (hs.auth[i] == NULL);
    g_free (hs.since[i]);
  }
  g_signal_handlers_disconnect_by_data (client, errors);
  g_signal_handlers_disconnect_by_data (client, &to_device);
}

GST_END_TEST;

/* Calls against a port where nothing listens fail with a network error, not
 * a hang; a call with no answer times out. */
GST_START_TEST (test_call_errors)
{
  g_autoptr (MrtcClient) client = mrtc_client_new ("http://127.0.0.1:9/");
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree gchar *errcode = NULL;
  MrtcRequest *req;

  fail_unless_equals_string (
      mrtc_client_get_homeserver_url (client), "http://127.0.0.1:9");
  req = mrtc_request_new ("GET", "/_matrix/client/versions");
  node = mrtc_client_call (client, req, &error);
  fail_unless (node == NULL);
  fail_unless (
      g_error_matches (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_NETWORK),
      "%s", error->message);
  errcode = mrtc_client_error_get_errcode (error);
  fail_unless (errcode == NULL);
  g_clear_error (&error);

  fail_if (
      mrtc_client_login_token (client, "secret-token-value", "DEV", &error));
  fail_unless (error != NULL);
  fail_if (strstr (error->message, "secret-token-value") != NULL);
}

GST_END_TEST;

GST_START_TEST (test_errcode_parsing)
{
  struct
  {
    const gchar *message;
    const gchar *errcode;
  } cases[] = {
    { "M_FORBIDDEN: nope (HTTP 403 on PUT /x)", "M_FORBIDDEN" },
    { "login as x failed: M_FORBIDDEN: Invalid password", "M_FORBIDDEN" },
    { "sending failed: M_NOT_FOUND: gone", "M_NOT_FOUND" },
    { "M_: nothing", NULL },
    { "XM_FOO: not an errcode", NULL },
    { "no errcode here", NULL },
    { "GET /x: timed out", NULL },
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = g_error_new_literal (
        MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_FAILED, cases[i].message);
    g_autofree gchar *errcode = mrtc_client_error_get_errcode (error);

    fail_unless_equals_string (errcode, cases[i].errcode);
  }
}

GST_END_TEST;

static Suite *
mrtc_client_suite (void)
{
  Suite *s = suite_create ("mrtc_client");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_sync_backoff_and_resume);
  tcase_add_test (tc, test_call_errors);
  tcase_add_test (tc, test_errcode_parsing);
  return s;
}

GST_CHECK_MAIN (mrtc_client);

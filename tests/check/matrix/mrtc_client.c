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
#include "mrtcsession.h"

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

/* A second fake homeserver for the tests below: answers by path, holds
 * /sync long polls for a while, and can go away and come back. */

typedef struct
{
  GMutex lock;
  guint n_sync;
  guint phase;   /* what /sync answers: 0 empty, 1 Bob joins */
  gboolean hold; /* hold /sync for @hold_ms before answering */
  guint hold_ms;
  guint sync_status; /* 0: 200 */
  gchar *last_since;
  guint epoch; /* bumped when the server goes down: held polls are gone */
} Fake2;

static void
fake2_lock (Fake2 *f)
{
  g_mutex_lock (&f->lock);
}

static void
fake2_unlock (Fake2 *f)
{
  g_mutex_unlock (&f->lock);
}

static GString *
deep_array (guint depth)
{
  GString *s = g_string_new (NULL);
  guint i;

  for (i = 0; i < depth; i++)
    g_string_append_c (s, '[');
  for (i = 0; i < depth; i++)
    g_string_append_c (s, ']');
  return s;
}

static void
misc_handler (SoupServer *server, SoupServerMessage *msg, const char *path,
    GHashTable *query, gpointer data)
{
  if (g_str_equal (path, "/deep")) {
    g_autoptr (GString) body = deep_array (100000);

    respond (msg, 200, "application/json", body->str);
  } else if (g_str_equal (path, "/deep-error")) {
    g_autoptr (GString) body = deep_array (100000);

    respond (msg, 500, "application/json", body->str);
  } else if (g_str_equal (path, "/big")) {
    g_autoptr (GString) body = g_string_new ("{\"a\":\"");
    guint i;

    for (i = 0; i < 5000; i++)
      g_string_append_c (body, 'x');
    g_string_append (body, "\"}");
    respond (msg, 200, "application/json", body->str);
  } else if (g_str_equal (path, "/max-delay")) {
    respond (msg, 400, "application/json",
        "{\"errcode\":\"M_UNKNOWN\",\"error\":\"The requested delay exceeds "
        "the allowed maximum.\",\"org.matrix.msc4140.errcode\":"
        "\"M_MAX_DELAY_EXCEEDED\",\"org.matrix.msc4140.max_delay\":5000}");
  } else {
    respond (msg, 404, "application/json",
        "{\"errcode\":\"M_UNRECOGNIZED\",\"error\":\"no\"}");
  }
}

static JsonNode *
call_path (MrtcClient *client, const gchar *path, gsize limit, GError **error)
{
  MrtcRequest *req = mrtc_request_new ("GET", path);

  if (limit > 0)
    req->max_response_bytes = limit;
  return mrtc_client_call (client, req, error);
}

static gchar *
listen_fake (SoupServer *server, guint *port)
{
  g_autoptr (GError) error = NULL;
  GSList *uris;

  fail_unless (soup_server_listen_local (
                   server, *port, SOUP_SERVER_LISTEN_IPV4_ONLY, &error),
      "%s", error ? error->message : "");
  uris = soup_server_get_uris (server);
  *port = g_uri_get_port (uris->data);
  g_slist_free_full (uris, (GDestroyNotify)g_uri_unref);
  return g_strdup_printf ("http://127.0.0.1:%u", *port);
}

/* Hostile response bodies (the review's finding 6): nesting that crashed a
 * thread inside json-glib, bodies over the limit, and the delayed-event
 * limit's errcode. The server runs on a thread of its own (the calls
 * block). */
static gpointer
server_thread (gpointer data)
{
  GMainLoop *loop = data;

  g_main_context_push_thread_default (g_main_loop_get_context (loop));
  g_main_loop_run (loop);
  g_main_context_pop_thread_default (g_main_loop_get_context (loop));
  return NULL;
}

static gboolean
quit_cb (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

GST_START_TEST (test_hostile_responses)
{
  g_autoptr (GMainContext) ctx = g_main_context_new ();
  g_autoptr (GMainLoop) loop = g_main_loop_new (ctx, FALSE);
  g_autoptr (SoupServer) server = NULL;
  g_autoptr (MrtcClient) client = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree gchar *url = NULL, *errcode = NULL;
  GThread *thread;
  guint port = 0;

  g_main_context_push_thread_default (ctx);
  server = soup_server_new (NULL, NULL);
  soup_server_add_handler (server, "/", misc_handler, NULL, NULL);
  url = listen_fake (server, &port);
  g_main_context_pop_thread_default (ctx);
  thread = g_thread_new ("fake-hs", server_thread, loop);
  client = mrtc_client_new (url);

  node = call_path (client, "/deep", 0, &error);
  fail_unless (node == NULL);
  fail_unless (g_error_matches (
                   error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE),
      "%s", error->message);
  GST_INFO ("deep: %s", error->message);
  g_clear_error (&error);

  node = call_path (client, "/deep-error", 0, &error);
  fail_unless (node == NULL);
  fail_unless (
      g_error_matches (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_FAILED),
      "%s", error->message);
  g_clear_error (&error);

  node = call_path (client, "/big", 1000, &error);
  fail_unless (node == NULL);
  fail_unless (g_error_matches (
                   error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE),
      "%s", error->message);
  fail_unless (
      strstr (error->message, "larger than") != NULL, "%s", error->message);
  g_clear_error (&error);
  node = call_path (client, "/big", 0, &error);
  g_assert_no_error (error);
  fail_unless (node != NULL);
  g_clear_pointer (&node, json_node_unref);

  node = call_path (client, "/max-delay", 0, &error);
  fail_unless (node == NULL);
  fail_unless (g_error_matches (error, MRTC_CLIENT_ERROR,
                   MRTC_CLIENT_ERROR_MAX_DELAY_EXCEEDED),
      "%s", error->message);
  fail_unless (strstr (error->message, "[max_delay 5000 ms]") != NULL, "%s",
      error->message);
  errcode = mrtc_client_error_get_errcode (error);
  fail_unless_equals_string (errcode, "M_MAX_DELAY_EXCEEDED");
  g_clear_error (&error);

  g_clear_object (&client);
  g_main_context_invoke (ctx, quit_cb, loop);
  g_thread_join (thread);
  g_main_context_push_thread_default (ctx);
  soup_server_disconnect (server);
  g_clear_object (&server);
  g_main_context_pop_thread_default (ctx);
}

GST_END_TEST;

static const gchar *FAKE_ROOM = "!r:fake";

static void
hs_answer (SoupServerMessage *msg, Fake2 *f)
{
  guint phase;

  fake2_lock (f);
  phase = f->phase;
  fake2_unlock (f);
  if (f->sync_status != 0) {
    respond (msg, f->sync_status, "application/json",
        "{\"errcode\":\"M_UNKNOWN_TOKEN\",\"error\":\"Invalid access token\","
        "\"soft_logout\":false}");
  } else if (phase == 1) {
    respond (msg, 200, "application/json",
        "{\"next_batch\":\"b2\",\"rooms\":{\"join\":{\"!r:fake\":{\"ti"
        "meline\":{\"events\":[{\"type\":\"m.room.member\",\"state_"
        "key\":\"@bob:fake\",\"sender\":\"@bob:fake\",\"event_id\":\""
        "$m\",\"origin_server_ts\":1,\"content\":{\"membership\":\""
        "join\"}},{\"type\":\"org.matrix.msc3401.call.member\",\""
        "state_key\":\"_@bob:fake_BOB_m.call\",\"sender\":\"@bob:"
        "fake\",\"event_id\":\"$c\",\"origin_server_ts\":999999999"
        "9999,\"content\":{\"application\":\"m.call\",\"call_id\":\""
        "\",\"device_id\":\"BOB\",\"focus_active\":{\"type\":\"liveki"
        "t\"},\"foci_preferred\":[]}}]}}}}}");
  } else {
    respond (msg, 200, "application/json", "{\"next_batch\":\"b1\"}");
  }
  soup_server_message_unpause (msg);
}

static gboolean
hs_release (gpointer data)
{
  gpointer *pair = data;
  Fake2 *f = pair[1];
  gboolean alive;

  fake2_lock (f);
  alive = GPOINTER_TO_UINT (pair[2]) == f->epoch;
  fake2_unlock (f);
  if (alive)
    hs_answer (pair[0], pair[1]);
  g_object_unref (pair[0]);
  g_free (pair);
  return G_SOURCE_REMOVE;
}

static void
hs_handler (SoupServer *server, SoupServerMessage *msg, const char *path,
    GHashTable *query, gpointer data)
{
  Fake2 *f = data;

  if (g_str_equal (path, "/_matrix/client/versions")) {
    respond (msg, 200, "application/json",
        "{\"versions\":[\"v1.11\"],\"unstable_features\":{}}");
  } else if (g_str_has_prefix (path, "/_matrix/client/v3/rooms/")
             && g_str_has_suffix (path, "/state")) {
    respond (msg, 200, "application/json",
        "[{\"type\":\"m.room.create\",\"state_key\":\"\",\"sender\":"
        "\"@alice:fake\",\"event_id\":\"$1\",\"content\":{\"room_version\":"
        "\"10\"}}]");
  } else if (g_str_equal (path, "/_matrix/client/v3/sync")) {
    gpointer *pair = g_new0 (gpointer, 3);
    guint hold_ms;

    fake2_lock (f);
    f->n_sync++;
    g_free (f->last_since);
    f->last_since = g_strdup (
        query != NULL ? g_hash_table_lookup (query, "since") : NULL);
    hold_ms = f->hold ? f->hold_ms : 0;
    fake2_unlock (f);
    /* a long poll: answer later */
    soup_server_message_pause (msg);
    pair[0] = g_object_ref (msg);
    pair[1] = f;
    pair[2] = GUINT_TO_POINTER (f->epoch);
    g_timeout_add (MAX (hold_ms, 20), hs_release, pair);
  } else {
    respond (msg, 404, "application/json",
        "{\"errcode\":\"M_UNRECOGNIZED\",\"error\":\"no\"}");
  }
}

static guint
fake2_n_sync (Fake2 *f)
{
  guint n;

  fake2_lock (f);
  n = f->n_sync;
  fake2_unlock (f);
  return n;
}

static void
iterate_for (guint ms)
{
  gint64 end = g_get_monotonic_time () + ms * 1000;

  while (g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, FALSE) || (g_usleep (2000), TRUE);
}

static gboolean
iterate_until_true (gboolean (*cond) (gpointer), gpointer data, guint seconds)
{
  gint64 end = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;

  while (!cond (data) && g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, FALSE) || (g_usleep (2000), TRUE);
  return cond (data);
}

static gboolean
any_sync (gpointer data)
{
  return fake2_n_sync (data) > 0;
}

/* mrtc_session_start() blocks: the fake server runs on this thread's
 * default context, so it starts from another thread. */
static gint start_done;

static gpointer
start_session_thread (gpointer data)
{
  g_autoptr (GError) error = NULL;
  gboolean ok = mrtc_session_start (data, &error);

  if (!ok)
    GST_ERROR ("start: %s", error->message);
  g_atomic_int_set (&start_done, 1);
  return GINT_TO_POINTER (ok);
}

static gboolean
started (gpointer data)
{
  return g_atomic_int_get (&start_done) != 0;
}

static gboolean
start_session (MrtcSession *session)
{
  GThread *t;

  g_atomic_int_set (&start_done, 0);
  t = g_thread_new ("start", start_session_thread, session);
  fail_unless (iterate_until_true (started, NULL, 30));
  return g_thread_join (t) != NULL;
}

static gboolean
queue_nonempty (gpointer data)
{
  return g_async_queue_length (data) > 0;
}

/* A client whose sync loop runs goes away with its last reference (the
 * review's finding 2), also after a session used it. */
GST_START_TEST (test_finalize_while_syncing)
{
  Fake2 f = {
    0,
  };
  g_autoptr (SoupServer) server = soup_server_new (NULL, NULL);
  g_autofree gchar *url = NULL;
  MrtcClient *client;
  MrtcSession *session;
  gpointer weak;
  guint port = 0;
  g_autoptr (GError) error = NULL;

  g_mutex_init (&f.lock);
  f.hold = TRUE;
  f.hold_ms = 3000;
  soup_server_add_handler (server, "/", hs_handler, &f, NULL);
  url = listen_fake (server, &port);

  /* a sync request in flight */
  client = mrtc_client_new (url);
  weak = client;
  g_object_add_weak_pointer (G_OBJECT (client), &weak);
  mrtc_client_start_sync (client, 1000);
  fail_unless (iterate_until_true (any_sync, &f, 10));
  g_object_unref (client);
  fail_unless (weak == NULL, "the syncing client was not finalized");

  /* a session started (and stopped) on a client */
  client = mrtc_client_new (url);
  weak = client;
  g_object_add_weak_pointer (G_OBJECT (client), &weak);
  session = mrtc_session_new (client, FAKE_ROOM, NULL);
  g_object_unref (client);
  fail_unless (start_session (session));
  g_object_unref (session); /* dispose stops it on the client's thread */
  fail_unless (weak == NULL, "the client of a dropped session lives on");
  iterate_for (100);
  f.epoch++; /* held polls are gone */
  soup_server_disconnect (server);
  g_free (f.last_since);
}

GST_END_TEST;

static void
on_sync_error_q (MrtcClient *client, GError *error, GAsyncQueue *q)
{
  g_async_queue_push (q, g_strdup (error->message));
}

/* M_UNKNOWN_TOKEN (logged out) stops the sync loop with a sync-error. */
GST_START_TEST (test_unknown_token_stops_sync)
{
  Fake2 f = {
    0,
  };
  g_autoptr (SoupServer) server = soup_server_new (NULL, NULL);
  g_autoptr (GAsyncQueue) errors = g_async_queue_new_full (g_free);
  g_autoptr (MrtcClient) client = NULL;
  g_autofree gchar *url = NULL, *msg = NULL;
  guint port = 0, n;

  g_mutex_init (&f.lock);
  f.sync_status = 401;
  soup_server_add_handler (server, "/", hs_handler, &f, NULL);
  url = listen_fake (server, &port);
  client = mrtc_client_new (url);
  g_signal_connect (client, "sync-error", G_CALLBACK (on_sync_error_q), errors);
  mrtc_client_start_sync (client, 100);
  fail_unless (iterate_until_true (queue_nonempty, errors, 10));
  msg = g_async_queue_pop (errors);
  fail_unless (strstr (msg, "M_UNKNOWN_TOKEN") != NULL, "%s", msg);
  n = fake2_n_sync (&f);
  iterate_for (1500);
  fail_unless_equals_int (fake2_n_sync (&f), n);
  g_signal_handlers_disconnect_by_data (client, errors);
  f.epoch++; /* held polls are gone */
  soup_server_disconnect (server);
  g_free (f.last_since);
}

GST_END_TEST;

static void
on_member_joined_q (MrtcSession *s, MrtcMember *m, GAsyncQueue *q)
{
  g_async_queue_push (q, g_strdup (m->user_id));
}

/* A session survives its homeserver going away: it resumes from its since
 * token and still reports members (the stack's Synapse is shared by other
 * tests and cannot be restarted). */
GST_START_TEST (test_session_survives_restart)
{
  Fake2 f = {
    0,
  };
  g_autoptr (SoupServer) server = soup_server_new (NULL, NULL);
  g_autoptr (GAsyncQueue) joined = g_async_queue_new_full (g_free);
  g_autoptr (MrtcClient) client = NULL;
  g_autoptr (MrtcSession) session = NULL;
  g_autofree gchar *url = NULL, *who = NULL;
  guint port = 0, n;

  g_mutex_init (&f.lock);
  f.hold = TRUE;
  f.hold_ms = 200;
  soup_server_add_handler (server, "/", hs_handler, &f, NULL);
  url = listen_fake (server, &port);
  client = mrtc_client_new (url);
  session = mrtc_session_new (client, FAKE_ROOM, NULL);
  g_signal_connect (
      session, "member-joined", G_CALLBACK (on_member_joined_q), joined);
  fail_unless (start_session (session));
  fail_unless (iterate_until_true (any_sync, &f, 10));
  iterate_for (600);

  /* down for a while, then back on the same port */
  fake2_lock (&f);
  f.epoch++;
  fake2_unlock (&f);
  soup_server_disconnect (server);
  iterate_for (1500);
  soup_server_add_handler (server, "/", hs_handler, &f, NULL);
  fake2_lock (&f);
  f.phase = 1;
  n = f.n_sync;
  fake2_unlock (&f);
  g_free (listen_fake (server, &port));
  fail_unless (iterate_until_true (queue_nonempty, joined, 20),
      "no member-joined after the restart");
  who = g_async_queue_pop (joined);
  fail_unless_equals_string (who, "@bob:fake");
  fail_unless (fake2_n_sync (&f) > n);
  fake2_lock (&f);
  fail_unless_equals_string (f.last_since, "b1");
  fake2_unlock (&f);

  mrtc_session_stop (session);
  g_signal_handlers_disconnect_by_data (session, joined);
  f.epoch++; /* held polls are gone */
  soup_server_disconnect (server);
  g_free (f.last_since);
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
  tcase_add_test (tc, test_hostile_responses);
  tcase_add_test (tc, test_finalize_while_syncing);
  tcase_add_test (tc, test_unknown_token_stops_sync);
  tcase_add_test (tc, test_session_survives_restart);
  return s;
}

GST_CHECK_MAIN (mrtc_client);

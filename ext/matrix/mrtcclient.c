/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* A small Matrix client-server API client on libsoup3 and json-glib. It
 * runs on a thread and GMainContext of its own; callers on other threads
 * use the blocking calls or post work with mrtc_client_invoke().
 * Access tokens and passwords are never logged: requests are logged by
 * method and path only, and bodies never. */

#include "mrtcclient.h"
#include "mrtcjson.h"
#include "mrtcmember.h"

#include <libsoup/soup.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS 30000
#define SYNC_BACKOFF_MIN_MS 500
#define SYNC_BACKOFF_MAX_MS 10000
#define READ_CHUNK 65536

struct _MrtcClient
{
  GObject parent;

  gchar *homeserver_url; /* without trailing '/' */
  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  SoupSession *session;
  /* The sync loop's requests hold no reference to the client (a syncing
   * client must still go away with its last user reference); the loop
   * takes a strong one from here while it handles a response. */
  GWeakRef self;

  GMutex lock; /* protects the identity below */
  gchar *access_token;
  gchar *user_id;
  gchar *device_id;
  GHashTable *features; /* unstable feature -> bool */
  GPtrArray *versions;

  guint txn_counter;
  MrtcClockFunc clock;
  gpointer clock_data;
  MrtcStickyMap *sticky;
  /* event id -> expiry (ms) of every sticky event seen, keyed or not (an
   * encrypted one hides its sticky key), for mrtc_client_get_sticky_expiry */
  GHashTable *sticky_seen;

  /* sync loop, client thread only */
  GCancellable *sync_cancel;
  gchar *since;
  guint sync_timeout_ms;
  guint sync_backoff_ms;
  guint sync_count;
  GSource *sync_retry;
  gboolean sync_explicit; /* mrtc_client_start_sync() */
  guint sync_holds;       /* mrtc_client_hold_sync() */
};

enum
{
  SIGNAL_SYNC,
  SIGNAL_TO_DEVICE,
  SIGNAL_SYNC_ERROR,
  N_SIGNALS
};
static guint signals[N_SIGNALS];

G_DEFINE_TYPE (MrtcClient, mrtc_client, G_TYPE_OBJECT);

GQuark
mrtc_client_error_quark (void)
{
  return g_quark_from_static_string ("mrtc-client-error-quark");
}

gchar *
mrtc_client_error_get_errcode (const GError *error)
{
  const gchar *p;

  if (error == NULL || error->domain != MRTC_CLIENT_ERROR)
    return NULL;
  /* "M_ERRCODE: ..." possibly after context prefixes */
  for (p = strstr (error->message, "M_"); p != NULL; p = strstr (p + 1, "M_")) {
    const gchar *q = p + 2;

    if (p != error->message && (g_ascii_isalnum (p[-1]) || p[-1] == '_'))
      continue;
    while (g_ascii_isupper (*q) || g_ascii_isdigit (*q) || *q == '_')
      q++;
    if (*q == ':' && q > p + 2)
      return g_strndup (p, q - p);
  }
  return NULL;
}

static MrtcClientError
error_code_for (const gchar *errcode)
{
  if (errcode == NULL)
    return MRTC_CLIENT_ERROR_FAILED;
  if (strcmp (errcode, "M_FORBIDDEN") == 0)
    return MRTC_CLIENT_ERROR_FORBIDDEN;
  if (strcmp (errcode, "M_NOT_FOUND") == 0)
    return MRTC_CLIENT_ERROR_NOT_FOUND;
  if (strcmp (errcode, "M_UNKNOWN_TOKEN") == 0
      || strcmp (errcode, "M_MISSING_TOKEN") == 0)
    return MRTC_CLIENT_ERROR_UNKNOWN_TOKEN;
  if (strcmp (errcode, "M_LIMIT_EXCEEDED") == 0)
    return MRTC_CLIENT_ERROR_LIMIT_EXCEEDED;
  if (strcmp (errcode, "M_UNRECOGNIZED") == 0)
    return MRTC_CLIENT_ERROR_UNRECOGNIZED;
  /* MSC4140's delay limit: js-sdk's form and Synapse 1.13x's errcode */
  if (strcmp (errcode, "M_MAX_DELAY_EXCEEDED") == 0
      || strcmp (errcode, "ORG.MATRIX.MSC4140_DELAY_TOO_LARGE") == 0)
    return MRTC_CLIENT_ERROR_MAX_DELAY_EXCEEDED;
  return MRTC_CLIENT_ERROR_FAILED;
}

/* Requests */

MrtcRequest *
mrtc_request_new (const gchar *method, const gchar *path)
{
  MrtcRequest *req = g_new0 (MrtcRequest, 1);

  req->method = g_strdup (method);
  req->path = g_strdup (path);
  req->query = g_ptr_array_new_with_free_func (g_free);
  req->max_rate_limit_retries = 5;
  req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_DEFAULT;
  return req;
}

void
mrtc_request_add_query (MrtcRequest *req, const gchar *key, const gchar *value)
{
  g_ptr_array_add (req->query, g_strdup (key));
  g_ptr_array_add (req->query, g_strdup (value));
}

void
mrtc_request_take_body (MrtcRequest *req, JsonNode *body)
{
  if (req->body != NULL)
    json_node_unref (req->body);
  req->body = body;
}

void
mrtc_request_set_body_object (MrtcRequest *req, JsonObject *body)
{
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  json_node_take_object (node, body);
  mrtc_request_take_body (req, node);
}

void
mrtc_request_free (MrtcRequest *req)
{
  if (req == NULL)
    return;
  g_free (req->method);
  g_free (req->path);
  g_ptr_array_unref (req->query);
  if (req->body != NULL)
    json_node_unref (req->body);
  g_free (req);
}

static gchar *
escape (const gchar *s)
{
  return g_uri_escape_string (s, NULL, FALSE);
}

/* Client thread */

static gpointer
client_thread (gpointer data)
{
  MrtcClient *client = data;
  GMainContext *context = g_main_context_ref (client->context);
  GMainLoop *loop = g_main_loop_ref (client->loop);
  SoupSession *session;

  g_main_context_push_thread_default (context);
  session = soup_session_new_with_options (
      "timeout", 0, "idle-timeout", 60, "user-agent", "gst-matrixrtc", NULL);
  client->session = session;
  g_main_loop_run (loop);

  /* Let aborted requests call back (they see their cancellation). */
  soup_session_abort (session);
  while (g_main_context_pending (context))
    g_main_context_iteration (context, FALSE);
  g_object_unref (session);
  g_main_context_pop_thread_default (context);
  g_main_loop_unref (loop);
  g_main_context_unref (context);
  return NULL;
}

static gboolean
signal_ready (gpointer data)
{
  GAsyncQueue *q = data;

  g_async_queue_push (q, GINT_TO_POINTER (1));
  return G_SOURCE_REMOVE;
}

static void
mrtc_client_init (MrtcClient *client)
{
  g_mutex_init (&client->lock);
  client->features
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  client->versions = g_ptr_array_new_with_free_func (g_free);
  client->clock = mrtc_clock_real;
  client->sticky = mrtc_sticky_map_new (NULL, NULL);
  client->sticky_seen
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

static gint64
client_clock (gpointer data)
{
  MrtcClient *client = data;

  return client->clock (client->clock_data);
}

MrtcClient *
mrtc_client_new (const gchar *homeserver_url)
{
  MrtcClient *client;
  GAsyncQueue *ready;
  gsize len;

  g_return_val_if_fail (homeserver_url != NULL, NULL);

  client = g_object_new (MRTC_TYPE_CLIENT, NULL);
  client->homeserver_url = g_strdup (homeserver_url);
  len = strlen (client->homeserver_url);
  while (len > 0 && client->homeserver_url[len - 1] == '/')
    client->homeserver_url[--len] = '\0';
  mrtc_sticky_map_free (client->sticky);
  client->sticky = mrtc_sticky_map_new (client_clock, client);
  g_weak_ref_init (&client->self, client);
  client->context = g_main_context_new ();
  client->loop = g_main_loop_new (client->context, FALSE);
  client->thread = g_thread_new ("mrtc-client", client_thread, client);

  /* Wait until the thread runs its loop (and owns its session). */
  ready = g_async_queue_new ();
  mrtc_client_invoke (client, signal_ready, ready, NULL);
  g_async_queue_pop (ready);
  g_async_queue_unref (ready);
  return client;
}

static gboolean
quit_loop (gpointer data)
{
  MrtcClient *client = data;

  if (client->sync_cancel != NULL)
    g_cancellable_cancel (client->sync_cancel);
  if (client->sync_retry != NULL) {
    g_source_destroy (client->sync_retry);
    g_clear_pointer (&client->sync_retry, g_source_unref);
  }
  g_main_loop_quit (client->loop);
  return G_SOURCE_REMOVE;
}

static void
mrtc_client_finalize (GObject *object)
{
  MrtcClient *client = MRTC_CLIENT (object);

  if (client->thread != NULL) {
    if (g_thread_self () == client->thread) {
      quit_loop (client);
      g_thread_unref (client->thread);
    } else {
      mrtc_client_invoke (client, quit_loop, client, NULL);
      g_thread_join (client->thread);
    }
  }
  g_clear_object (&client->sync_cancel);
  g_weak_ref_clear (&client->self);
  g_main_loop_unref (client->loop);
  g_main_context_unref (client->context);
  g_free (client->homeserver_url);
  g_free (client->access_token);
  g_free (client->user_id);
  g_free (client->device_id);
  g_free (client->since);
  g_hash_table_unref (client->features);
  g_ptr_array_unref (client->versions);
  mrtc_sticky_map_free (client->sticky);
  g_hash_table_unref (client->sticky_seen);
  g_mutex_clear (&client->lock);
  G_OBJECT_CLASS (mrtc_client_parent_class)->finalize (object);
}

static void
mrtc_client_class_init (MrtcClientClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);

  gobject_class->finalize = mrtc_client_finalize;

  /**
   * MrtcClient::sync:
   * @response: the /sync response (JsonObject, borrowed)
   *
   * Emitted on the client's thread after each sync response.
   */
  signals[SIGNAL_SYNC] = g_signal_new ("sync", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, JSON_TYPE_OBJECT);
  /**
   * MrtcClient::to-device:
   * @event: one to-device event (JsonObject, borrowed)
   */
  signals[SIGNAL_TO_DEVICE]
      = g_signal_new ("to-device", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
          0, NULL, NULL, NULL, G_TYPE_NONE, 1, JSON_TYPE_OBJECT);
  /**
   * MrtcClient::sync-error:
   * @error: what went wrong (GError, borrowed); the loop retries
   */
  signals[SIGNAL_SYNC_ERROR]
      = g_signal_new ("sync-error", G_TYPE_FROM_CLASS (klass),
          G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

GMainContext *
mrtc_client_get_context (MrtcClient *client)
{
  return client->context;
}

const gchar *
mrtc_client_get_homeserver_url (MrtcClient *client)
{
  return client->homeserver_url;
}

const gchar *
mrtc_client_get_user_id (MrtcClient *client)
{
  return client->user_id;
}

const gchar *
mrtc_client_get_device_id (MrtcClient *client)
{
  return client->device_id;
}

gchar *
mrtc_client_dup_user_id (MrtcClient *client)
{
  gchar *ret;

  g_mutex_lock (&client->lock);
  ret = g_strdup (client->user_id);
  g_mutex_unlock (&client->lock);
  return ret;
}

gchar *
mrtc_client_dup_device_id (MrtcClient *client)
{
  gchar *ret;

  g_mutex_lock (&client->lock);
  ret = g_strdup (client->device_id);
  g_mutex_unlock (&client->lock);
  return ret;
}

gboolean
mrtc_client_is_logged_in (MrtcClient *client)
{
  gboolean ret;

  g_mutex_lock (&client->lock);
  ret = client->access_token != NULL && client->user_id != NULL;
  g_mutex_unlock (&client->lock);
  return ret;
}

void
mrtc_client_set_clock (
    MrtcClient *client, MrtcClockFunc clock, gpointer user_data)
{
  client->clock = clock != NULL ? clock : mrtc_clock_real;
  client->clock_data = user_data;
}

void
mrtc_client_invoke (
    MrtcClient *client, GSourceFunc func, gpointer data, GDestroyNotify notify)
{
  GSource *source = g_idle_source_new ();

  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, func, data, notify);
  g_source_set_static_name (source, "mrtc-client-invoke");
  g_source_attach (source, client->context);
  g_source_unref (source);
}

gchar *
mrtc_client_new_txn_id (MrtcClient *client)
{
  guint n = g_atomic_int_add (&client->txn_counter, 1);

  return g_strdup_printf ("mrtc%" G_GINT64_FORMAT "x%u", g_get_real_time (), n);
}

/* Calls */

typedef struct
{
  MrtcClient *client; /* borrowed: the task holds a reference, or (sync) the
                       * client cancels the call before it goes */
  MrtcRequest *req;
  SoupMessage *msg;
  GInputStream *stream;
  GByteArray *body;
  GCancellable *op_cancel; /* cancelled by the caller's or the timeout */
  gulong caller_handler;
  GSource *timeout;
  gboolean timed_out;
  guint rate_retries;
} CallData;

static void
call_data_free (CallData *cd)
{
  if (cd->timeout != NULL) {
    g_source_destroy (cd->timeout);
    g_source_unref (cd->timeout);
  }
  g_clear_object (&cd->stream);
  g_clear_object (&cd->msg);
  if (cd->body != NULL)
    g_byte_array_unref (cd->body);
  g_clear_object (&cd->op_cancel);
  mrtc_request_free (cd->req);
  g_free (cd);
}

static void start_call (GTask *task);

static gboolean
call_timed_out (gpointer data)
{
  CallData *cd = data;

  cd->timed_out = TRUE;
  g_cancellable_cancel (cd->op_cancel);
  return G_SOURCE_CONTINUE;
}

static void fail_task (GTask *task, GError *error);

static gboolean
call_retry (gpointer data)
{
  GTask *task = data;
  CallData *cd = g_task_get_task_data (task);

  /* A sync call whose client is going away is cancelled: do not touch the
   * client. */
  if (g_cancellable_is_cancelled (cd->op_cancel)) {
    fail_task (
        task, g_error_new (MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_CANCELLED,
                  "%s %s cancelled", cd->req->method, cd->req->path));
    return G_SOURCE_REMOVE;
  }
  start_call (task);
  return G_SOURCE_REMOVE;
}

static void
fail_task (GTask *task, GError *error)
{
  CallData *cd = g_task_get_task_data (task);
  GCancellable *caller = g_task_get_cancellable (task);

  if (cd->caller_handler != 0 && caller != NULL) {
    g_cancellable_disconnect (caller, cd->caller_handler);
    cd->caller_handler = 0;
  }
  g_task_return_error (task, error);
  g_object_unref (task);
}

static void
succeed_task (GTask *task, JsonNode *node)
{
  CallData *cd = g_task_get_task_data (task);
  GCancellable *caller = g_task_get_cancellable (task);

  if (cd->caller_handler != 0 && caller != NULL) {
    g_cancellable_disconnect (caller, cd->caller_handler);
    cd->caller_handler = 0;
  }
  g_task_return_pointer (task, node, (GDestroyNotify)json_node_unref);
  g_object_unref (task);
}

static gint64
retry_after_ms (SoupMessage *msg, JsonNode *node)
{
  gint64 ms;
  const gchar *header;

  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node)
      && mrtc_json_get_int (json_node_get_object (node), "retry_after_ms", &ms)
      && ms >= 0)
    return MIN (ms, 60000);
  header = soup_message_headers_get_one (
      soup_message_get_response_headers (msg), "Retry-After");
  if (header != NULL && g_ascii_isdigit (header[0]))
    return MIN (g_ascii_strtoll (header, NULL, 10) * 1000, 60000);
  return 1000;
}

static void
stop_timeout (CallData *cd)
{
  if (cd->timeout != NULL) {
    g_source_destroy (cd->timeout);
    g_clear_pointer (&cd->timeout, g_source_unref);
  }
}

/* No complete response: timeout, cancellation or a network error. */
static void
fail_transport (GTask *task, const GError *error)
{
  CallData *cd = g_task_get_task_data (task);
  GCancellable *caller = g_task_get_cancellable (task);

  stop_timeout (cd);
  if (cd->timed_out)
    fail_task (task, g_error_new (MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_NETWORK,
                         "%s %s timed out", cd->req->method, cd->req->path));
  else if ((caller != NULL && g_cancellable_is_cancelled (caller))
           || g_cancellable_is_cancelled (cd->op_cancel))
    fail_task (
        task, g_error_new (MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_CANCELLED,
                  "%s %s cancelled", cd->req->method, cd->req->path));
  else
    fail_task (
        task, g_error_new (MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_NETWORK,
                  "%s %s: %s", cd->req->method, cd->req->path, error->message));
}

static void
handle_response (GTask *task, const gchar *data_ptr, gsize size)
{
  CallData *cd = g_task_get_task_data (task);
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GError) parse_error = NULL;
  guint status;

  stop_timeout (cd);
  status = soup_message_get_status (cd->msg);
  /* Error bodies are small; only those are parsed. */
  if (size > 0
      && ((status >= 200 && status < 300)
          || size <= MRTC_CLIENT_MAX_RESPONSE_SMALL))
    root = mrtc_json_parse (
        data_ptr, size, 0, MRTC_JSON_MAX_DEPTH_ANY, &parse_error);
  g_debug ("%s %s -> %u", cd->req->method, cd->req->path, status);

  if (status >= 200 && status < 300) {
    if (root == NULL
        || (!JSON_NODE_HOLDS_OBJECT (root) && !JSON_NODE_HOLDS_ARRAY (root))) {
      fail_task (
          task, g_error_new (MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
                    "%s %s: HTTP %u with a body that is not a JSON object or "
                    "array%s%s",
                    cd->req->method, cd->req->path, status,
                    parse_error != NULL ? ": " : "",
                    parse_error != NULL ? parse_error->message : ""));
      return;
    }
    succeed_task (task, g_steal_pointer (&root));
    return;
  }

  if (status == 429 && cd->rate_retries < cd->req->max_rate_limit_retries) {
    gint64 delay = retry_after_ms (cd->msg, root);
    GSource *retry = g_timeout_source_new (delay);

    cd->rate_retries++;
    g_debug ("%s %s rate limited, retry %u in %" G_GINT64_FORMAT " ms",
        cd->req->method, cd->req->path, cd->rate_retries, delay);
    g_source_set_callback (retry, call_retry, task, NULL);
    g_source_attach (retry, g_main_context_get_thread_default ());
    g_source_unref (retry);
    return;
  }

  {
    const gchar *errcode = NULL, *message = NULL;
    JsonObject *obj = root != NULL && JSON_NODE_HOLDS_OBJECT (root)
                          ? json_node_get_object (root)
                          : NULL;
    gint64 max_delay = -1;
    g_autofree gchar *extra = NULL;

    errcode = mrtc_json_get_string (obj, "errcode");
    message = mrtc_json_get_string (obj, "error");
    /* Synapse's delayed-event limit carries its own errcode. */
    if (mrtc_json_get_string (obj, "org.matrix.msc4140.errcode") != NULL)
      errcode = mrtc_json_get_string (obj, "org.matrix.msc4140.errcode");
    if (!mrtc_json_get_int (obj, "org.matrix.msc4140.max_delay", &max_delay)
        && g_strcmp0 (errcode, "ORG.MATRIX.MSC4140_DELAY_TOO_LARGE") == 0
        && message != NULL && strstr (message, "maximum (") != NULL) {
      /* "... exceeds the allowed maximum (86400000ms)" */
      const gchar *p = strstr (message, "maximum (") + strlen ("maximum (");

      if (g_ascii_isdigit (*p))
        max_delay = g_ascii_strtoll (p, NULL, 10);
    }
    if (max_delay >= 0)
      extra
          = g_strdup_printf (" [max_delay %" G_GINT64_FORMAT " ms]", max_delay);
    if (errcode == NULL) {
      /* not a Matrix error (a proxy, a restarting server, ...) */
      fail_task (task,
          g_error_new (MRTC_CLIENT_ERROR,
              status == 404 ? MRTC_CLIENT_ERROR_UNRECOGNIZED
                            : MRTC_CLIENT_ERROR_FAILED,
              "HTTP %u %s on %s %s", status, soup_status_get_phrase (status),
              cd->req->method, cd->req->path));
      return;
    }
    fail_task (task,
        g_error_new (MRTC_CLIENT_ERROR, error_code_for (errcode),
            "%s: %s (HTTP %u on %s %s)%s", errcode,
            message != NULL ? message : soup_status_get_phrase (status), status,
            cd->req->method, cd->req->path, extra != NULL ? extra : ""));
  }
}

static void read_body (GTask *task);

static void
on_body_read (GObject *source, GAsyncResult *result, gpointer data)
{
  GTask *task = data;
  CallData *cd = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = g_input_stream_read_bytes_finish (
      G_INPUT_STREAM (source), result, &error);
  gsize size;

  if (bytes == NULL) {
    fail_transport (task, error);
    return;
  }
  size = g_bytes_get_size (bytes);
  if (size == 0) {
    handle_response (task, (const gchar *)cd->body->data, cd->body->len);
    return;
  }
  if (cd->body->len + size > cd->req->max_response_bytes) {
    stop_timeout (cd);
    fail_task (
        task, g_error_new (MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
                  "%s %s: response larger than %" G_GSIZE_FORMAT " bytes",
                  cd->req->method, cd->req->path, cd->req->max_response_bytes));
    return;
  }
  g_byte_array_append (cd->body, g_bytes_get_data (bytes, NULL), size);
  read_body (task);
}

static void
read_body (GTask *task)
{
  CallData *cd = g_task_get_task_data (task);

  g_input_stream_read_bytes_async (cd->stream, READ_CHUNK, G_PRIORITY_DEFAULT,
      cd->op_cancel, on_body_read, task);
}

static void
on_call_sent (GObject *source, GAsyncResult *result, gpointer data)
{
  GTask *task = data;
  CallData *cd = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  GInputStream *stream
      = soup_session_send_finish (SOUP_SESSION (source), result, &error);
  goffset length;

  if (stream == NULL) {
    fail_transport (task, error);
    return;
  }
  g_clear_object (&cd->stream);
  cd->stream = stream;
  length = soup_message_headers_get_content_length (
      soup_message_get_response_headers (cd->msg));
  if (length > 0 && (guint64)length > cd->req->max_response_bytes) {
    stop_timeout (cd);
    fail_task (
        task, g_error_new (MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
                  "%s %s: response of %" G_GINT64_FORMAT
                  " bytes is larger than %" G_GSIZE_FORMAT,
                  cd->req->method, cd->req->path, (gint64)length,
                  cd->req->max_response_bytes));
    return;
  }
  if (cd->body != NULL)
    g_byte_array_unref (cd->body);
  cd->body = g_byte_array_new ();
  read_body (task);
}

static void
cancel_op (GCancellable *caller, gpointer data)
{
  g_cancellable_cancel (G_CANCELLABLE (data));
}

static void
start_call (GTask *task)
{
  CallData *cd0 = g_task_get_task_data (task);
  MrtcClient *client = cd0->client;
  CallData *cd = g_task_get_task_data (task);
  MrtcRequest *req = cd->req;
  g_autoptr (GString) uri = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_autofree gchar *token = NULL;
  guint i;

  if (g_str_has_prefix (req->path, "http://")
      || g_str_has_prefix (req->path, "https://"))
    g_string_append (uri, req->path);
  else
    g_string_append_printf (uri, "%s%s", client->homeserver_url, req->path);
  for (i = 0; i + 1 < req->query->len; i += 2) {
    g_autofree gchar *k = escape (g_ptr_array_index (req->query, i));
    g_autofree gchar *v = escape (g_ptr_array_index (req->query, i + 1));

    g_string_append_printf (uri, "%c%s=%s", i == 0 ? '?' : '&', k, v);
  }

  g_clear_object (&cd->msg);
  cd->msg = soup_message_new (req->method, uri->str);
  if (cd->msg == NULL) {
    fail_task (task, g_error_new (MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_FAILED,
                         "invalid URL for %s %s", req->method, req->path));
    return;
  }
  if (req->body != NULL) {
    gchar *json = json_to_string (req->body, FALSE);
    g_autoptr (GBytes) bytes = g_bytes_new_take (json, strlen (json));

    soup_message_set_request_body_from_bytes (
        cd->msg, "application/json", bytes);
  } else if (strcmp (req->method, "POST") == 0
             || strcmp (req->method, "PUT") == 0) {
    g_autoptr (GBytes) bytes = g_bytes_new_static ("{}", 2);

    soup_message_set_request_body_from_bytes (
        cd->msg, "application/json", bytes);
  }

  g_mutex_lock (&client->lock);
  token = g_strdup (client->access_token);
  g_mutex_unlock (&client->lock);
  if (!req->no_auth && token != NULL) {
    g_autofree gchar *auth = g_strdup_printf ("Bearer %s", token);

    soup_message_headers_replace (
        soup_message_get_request_headers (cd->msg), "Authorization", auth);
  }

  g_debug ("%s %s", req->method, req->path);
  cd->timeout = g_timeout_source_new (
      req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS);
  g_source_set_callback (cd->timeout, call_timed_out, cd, NULL);
  g_source_attach (cd->timeout, g_main_context_get_thread_default ());
  if (req->max_response_bytes == 0)
    req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_DEFAULT;
  soup_session_send_async (client->session, cd->msg, G_PRIORITY_DEFAULT,
      cd->op_cancel, on_call_sent, task);
}

/* @hold_ref FALSE: the task has no source object and does not keep the
 * client alive (the sync loop); its callback gets source NULL. */
static void
call_async_full (MrtcClient *client, MrtcRequest *req,
    GCancellable *cancellable, gboolean hold_ref, GAsyncReadyCallback callback,
    gpointer user_data)
{
  GTask *task;
  CallData *cd;

  task
      = g_task_new (hold_ref ? client : NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, mrtc_client_call_async);
  cd = g_new0 (CallData, 1);
  cd->client = client;
  cd->req = req;
  cd->op_cancel = g_cancellable_new ();
  g_task_set_task_data (task, cd, (GDestroyNotify)call_data_free);
  if (cancellable != NULL) {
    cd->caller_handler = g_cancellable_connect (cancellable,
        G_CALLBACK (cancel_op), g_object_ref (cd->op_cancel), g_object_unref);
    if (cd->caller_handler == 0) {
      /* already cancelled */
      g_task_return_new_error (task, MRTC_CLIENT_ERROR,
          MRTC_CLIENT_ERROR_CANCELLED, "%s %s cancelled", req->method,
          req->path);
      g_object_unref (task);
      return;
    }
  }
  start_call (task);
}

void
mrtc_client_call_async (MrtcClient *client, MrtcRequest *req,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (MRTC_IS_CLIENT (client));
  g_return_if_fail (req != NULL);
  call_async_full (client, req, cancellable, TRUE, callback, user_data);
}

JsonNode *
mrtc_client_call_finish (
    MrtcClient *client, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, client), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

typedef struct
{
  MrtcClient *client;
  MrtcRequest *req;
  GMutex lock;
  GCond cond;
  gboolean done;
  JsonNode *result;
  GError *error;
} BlockingCall;

static void
blocking_done (GObject *source, GAsyncResult *result, gpointer data)
{
  BlockingCall *bc = data;
  GError *error = NULL;
  JsonNode *node
      = mrtc_client_call_finish (MRTC_CLIENT (source), result, &error);

  g_mutex_lock (&bc->lock);
  bc->result = node;
  bc->error = error;
  bc->done = TRUE;
  g_cond_signal (&bc->cond);
  g_mutex_unlock (&bc->lock);
}

static gboolean
blocking_start (gpointer data)
{
  BlockingCall *bc = data;

  mrtc_client_call_async (bc->client, bc->req, NULL, blocking_done, bc);
  return G_SOURCE_REMOVE;
}

JsonNode *
mrtc_client_call (MrtcClient *client, MrtcRequest *req, GError **error)
{
  BlockingCall bc = {
    0,
  };

  g_return_val_if_fail (MRTC_IS_CLIENT (client), NULL);

  if (g_thread_self () == client->thread) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_WRONG_THREAD,
        "blocking %s %s on the client's own thread", req->method, req->path);
    mrtc_request_free (req);
    return NULL;
  }
  bc.client = client;
  bc.req = req;
  g_mutex_init (&bc.lock);
  g_cond_init (&bc.cond);
  mrtc_client_invoke (client, blocking_start, &bc, NULL);
  g_mutex_lock (&bc.lock);
  while (!bc.done)
    g_cond_wait (&bc.cond, &bc.lock);
  g_mutex_unlock (&bc.lock);
  g_mutex_clear (&bc.lock);
  g_cond_clear (&bc.cond);
  if (bc.error != NULL)
    g_propagate_error (error, bc.error);
  return bc.result;
}

/* Request builders */

MrtcRequest *
mrtc_request_send_event (MrtcClient *client, const gchar *room_id,
    const gchar *type, JsonObject *content, gint64 sticky_duration_ms,
    gint64 delay_ms)
{
  g_autofree gchar *r = escape (room_id), *t = escape (type);
  g_autofree gchar *txn = mrtc_client_new_txn_id (client);
  g_autofree gchar *path = g_strdup_printf ("/_matrix/client/v3/rooms/%s/"
                                            "send/%s/%s",
      r, t, txn);
  MrtcRequest *req = mrtc_request_new ("PUT", path);

  if (sticky_duration_ms >= 0) {
    g_autofree gchar *v
        = g_strdup_printf ("%" G_GINT64_FORMAT, sticky_duration_ms);

    mrtc_request_add_query (req, "org.matrix.msc4354.sticky_duration_ms", v);
  }
  if (delay_ms >= 0) {
    g_autofree gchar *v = g_strdup_printf ("%" G_GINT64_FORMAT, delay_ms);

    mrtc_request_add_query (req, "org.matrix.msc4140.delay", v);
  }
  mrtc_request_set_body_object (req, json_object_ref (content));
  return req;
}

MrtcRequest *
mrtc_request_send_state (const gchar *room_id, const gchar *type,
    const gchar *state_key, JsonObject *content, gint64 sticky_duration_ms,
    gint64 delay_ms)
{
  g_autofree gchar *r = escape (room_id), *t = escape (type);
  g_autofree gchar *k = escape (state_key != NULL ? state_key : "");
  g_autofree gchar *path = g_strdup_printf ("/_matrix/client/v3/rooms/%s/"
                                            "state/%s/%s",
      r, t, k);
  MrtcRequest *req = mrtc_request_new ("PUT", path);

  if (sticky_duration_ms >= 0) {
    g_autofree gchar *v
        = g_strdup_printf ("%" G_GINT64_FORMAT, sticky_duration_ms);

    mrtc_request_add_query (req, "org.matrix.msc4354.sticky_duration_ms", v);
  }
  if (delay_ms >= 0) {
    g_autofree gchar *v = g_strdup_printf ("%" G_GINT64_FORMAT, delay_ms);

    mrtc_request_add_query (req, "org.matrix.msc4140.delay", v);
  }
  mrtc_request_set_body_object (req, json_object_ref (content));
  return req;
}

MrtcRequest *
mrtc_request_delayed_event (
    const gchar *delay_id, const gchar *action, gboolean legacy_form)
{
  g_autofree gchar *d = escape (delay_id);
  g_autofree gchar *path = NULL;
  MrtcRequest *req;
  JsonObject *body = json_object_new ();

  if (legacy_form) {
    path = g_strdup_printf ("/_matrix/client/unstable/org.matrix.msc4140/"
                            "delayed_events/%s",
        d);
    json_object_set_string_member (body, "action", action);
  } else {
    path = g_strdup_printf ("/_matrix/client/unstable/org.matrix.msc4140/"
                            "delayed_events/%s/%s",
        d, action);
  }
  req = mrtc_request_new ("POST", path);
  mrtc_request_set_body_object (req, body);
  return req;
}

/* Blocking conveniences */

static JsonObject *
call_object (MrtcClient *client, MrtcRequest *req, GError **error)
{
  g_autofree gchar *what = g_strdup_printf ("%s %s", req->method, req->path);
  JsonNode *node = mrtc_client_call (client, req, error);
  JsonObject *obj;

  if (node == NULL)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
        "%s: response is not a JSON object", what);
    json_node_unref (node);
    return NULL;
  }
  obj = json_object_ref (json_node_get_object (node));
  json_node_unref (node);
  return obj;
}

static gboolean
require_string (JsonObject *obj, const gchar *name, const gchar *what,
    gchar **out, GError **error)
{
  const gchar *s = mrtc_json_get_string (obj, name);

  if (s == NULL) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
        "%s: response without %s", what, name);
    return FALSE;
  }
  *out = g_strdup (s);
  return TRUE;
}

gboolean
mrtc_client_login_password (MrtcClient *client, const gchar *user,
    const gchar *password, const gchar *device_id, GError **error)
{
  MrtcRequest *req = mrtc_request_new ("POST", "/_matrix/client/v3/login");
  JsonObject *body = json_object_new ();
  JsonObject *ident = json_object_new ();
  g_autoptr (JsonObject) resp = NULL;
  gchar *token = NULL, *uid = NULL, *did = NULL;

  json_object_set_string_member (body, "type", "m.login.password");
  json_object_set_string_member (ident, "type", "m.id.user");
  json_object_set_string_member (ident, "user", user);
  json_object_set_object_member (body, "identifier", ident);
  json_object_set_string_member (body, "password", password);
  if (device_id != NULL)
    json_object_set_string_member (body, "device_id", device_id);
  json_object_set_string_member (
      body, "initial_device_display_name", "gst-matrixrtc");
  mrtc_request_set_body_object (req, body);
  req->no_auth = TRUE;
  req->secret_body = TRUE;
  req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_SMALL;

  resp = call_object (client, req, error);
  if (resp == NULL) {
    g_prefix_error (error, "login as %s failed: ", user);
    return FALSE;
  }
  if (!require_string (resp, "access_token", "login", &token, error)
      || !require_string (resp, "user_id", "login", &uid, error)
      || !require_string (resp, "device_id", "login", &did, error)) {
    g_free (token);
    g_free (uid);
    return FALSE;
  }
  g_mutex_lock (&client->lock);
  g_free (client->access_token);
  client->access_token = token;
  g_free (client->user_id);
  client->user_id = uid;
  g_free (client->device_id);
  client->device_id = did;
  g_mutex_unlock (&client->lock);
  g_info ("logged in as %s (device %s)", uid, did);
  return TRUE;
}

gboolean
mrtc_client_whoami (MrtcClient *client, GError **error)
{
  MrtcRequest *req
      = mrtc_request_new ("GET", "/_matrix/client/v3/account/whoami");
  g_autoptr (JsonObject) resp = NULL;
  gchar *uid = NULL;
  const gchar *did;

  req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_SMALL;
  resp = call_object (client, req, error);
  if (resp == NULL || !require_string (resp, "user_id", "whoami", &uid, error))
    return FALSE;
  did = mrtc_json_get_string (resp, "device_id");
  g_mutex_lock (&client->lock);
  g_free (client->user_id);
  client->user_id = uid;
  if (did != NULL) {
    g_free (client->device_id);
    client->device_id = g_strdup (did);
  }
  g_mutex_unlock (&client->lock);
  return TRUE;
}

gboolean
mrtc_client_login_token (MrtcClient *client, const gchar *access_token,
    const gchar *device_id, GError **error)
{
  g_mutex_lock (&client->lock);
  g_free (client->access_token);
  client->access_token = g_strdup (access_token);
  g_free (client->device_id);
  client->device_id = g_strdup (device_id);
  g_mutex_unlock (&client->lock);
  if (!mrtc_client_whoami (client, error)) {
    g_prefix_error (error, "access token not accepted: ");
    return FALSE;
  }
  g_mutex_lock (&client->lock);
  if (client->device_id == NULL) {
    g_mutex_unlock (&client->lock);
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
        "whoami gave no device id and none was set");
    return FALSE;
  }
  g_mutex_unlock (&client->lock);
  return TRUE;
}

gboolean
mrtc_client_fetch_versions (MrtcClient *client, GError **error)
{
  MrtcRequest *req = mrtc_request_new ("GET", "/_matrix/client/versions");
  g_autoptr (JsonObject) resp = NULL;
  JsonObject *features;
  JsonArray *versions;
  guint i;

  req->no_auth = TRUE;
  req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_SMALL;
  resp = call_object (client, req, error);
  if (resp == NULL)
    return FALSE;
  features = mrtc_json_get_object (resp, "unstable_features");
  versions = mrtc_json_get_array (resp, "versions");
  g_mutex_lock (&client->lock);
  g_hash_table_remove_all (client->features);
  g_ptr_array_set_size (client->versions, 0);
  if (features != NULL) {
    g_autoptr (GList) names = json_object_get_members (features);
    GList *l;

    for (l = names; l != NULL; l = l->next) {
      JsonNode *n = json_object_get_member (features, l->data);

      if (JSON_NODE_HOLDS_VALUE (n)
          && json_node_get_value_type (n) == G_TYPE_BOOLEAN
          && json_node_get_boolean (n))
        g_hash_table_add (client->features, g_strdup (l->data));
    }
  }
  for (i = 0; versions != NULL && i < json_array_get_length (versions); i++) {
    JsonNode *n = json_array_get_element (versions, i);

    if (JSON_NODE_HOLDS_VALUE (n)
        && json_node_get_value_type (n) == G_TYPE_STRING)
      g_ptr_array_add (client->versions, g_strdup (json_node_get_string (n)));
  }
  g_mutex_unlock (&client->lock);
  return TRUE;
}

gboolean
mrtc_client_has_feature (MrtcClient *client, const gchar *feature)
{
  gboolean ret;

  g_mutex_lock (&client->lock);
  ret = g_hash_table_contains (client->features, feature);
  g_mutex_unlock (&client->lock);
  return ret;
}

gboolean
mrtc_client_supports_version (MrtcClient *client, const gchar *version)
{
  gboolean ret = FALSE;
  guint i;

  g_mutex_lock (&client->lock);
  for (i = 0; i < client->versions->len; i++)
    ret |= g_strcmp0 (g_ptr_array_index (client->versions, i), version) == 0;
  g_mutex_unlock (&client->lock);
  return ret;
}

gchar *
mrtc_client_join_room (
    MrtcClient *client, const gchar *id_or_alias, GError **error)
{
  g_autofree gchar *e = escape (id_or_alias);
  g_autofree gchar *path = g_strdup_printf ("/_matrix/client/v3/join/%s", e);
  g_autoptr (JsonObject) resp
      = call_object (client, mrtc_request_new ("POST", path), error);
  gchar *room_id = NULL;

  if (resp == NULL) {
    g_prefix_error (error, "joining %s failed: ", id_or_alias);
    return NULL;
  }
  if (!require_string (resp, "room_id", "join", &room_id, error))
    return NULL;
  return room_id;
}

gchar *
mrtc_client_create_room (MrtcClient *client, JsonObject *body, GError **error)
{
  MrtcRequest *req = mrtc_request_new ("POST", "/_matrix/client/v3/createRoom");
  g_autoptr (JsonObject) resp = NULL;
  gchar *room_id = NULL;

  mrtc_request_set_body_object (
      req, body != NULL ? json_object_ref (body) : json_object_new ());
  resp = call_object (client, req, error);
  if (resp == NULL
      || !require_string (resp, "room_id", "createRoom", &room_id, error))
    return NULL;
  return room_id;
}

JsonArray *
mrtc_client_get_room_state (
    MrtcClient *client, const gchar *room_id, GError **error)
{
  g_autofree gchar *r = escape (room_id);
  g_autofree gchar *path = g_strdup_printf ("/_matrix/client/v3/rooms/%s/"
                                            "state",
      r);
  MrtcRequest *req = mrtc_request_new ("GET", path);
  JsonNode *node;
  JsonArray *array;

  req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_LARGE;
  node = mrtc_client_call (client, req, error);

  if (node == NULL)
    return NULL;
  if (!JSON_NODE_HOLDS_ARRAY (node)) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
        "room state of %s is not an array", room_id);
    json_node_unref (node);
    return NULL;
  }
  array = json_array_ref (json_node_get_array (node));
  json_node_unref (node);
  return array;
}

static gchar *
event_or_delay_id (JsonObject *resp, gint64 delay_ms, GError **error)
{
  gchar *id = NULL;

  if (resp == NULL)
    return NULL;
  if (!require_string (
          resp, delay_ms >= 0 ? "delay_id" : "event_id", "send", &id, error))
    return NULL;
  return id;
}

gchar *
mrtc_client_send_event (MrtcClient *client, const gchar *room_id,
    const gchar *type, JsonObject *content, gint64 sticky_duration_ms,
    gint64 delay_ms, GError **error)
{
  g_autoptr (JsonObject) resp = call_object (client,
      mrtc_request_send_event (
          client, room_id, type, content, sticky_duration_ms, delay_ms),
      error);

  return event_or_delay_id (resp, delay_ms, error);
}

gchar *
mrtc_client_send_state (MrtcClient *client, const gchar *room_id,
    const gchar *type, const gchar *state_key, JsonObject *content,
    gint64 delay_ms, GError **error)
{
  g_autoptr (JsonObject) resp = call_object (client,
      mrtc_request_send_state (room_id, type, state_key, content, -1, delay_ms),
      error);

  return event_or_delay_id (resp, delay_ms, error);
}

gboolean
mrtc_client_delayed_event_action (MrtcClient *client, const gchar *delay_id,
    const gchar *action, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (JsonObject) resp = call_object (
      client, mrtc_request_delayed_event (delay_id, action, FALSE), &local);

  if (resp != NULL)
    return TRUE;
  if (g_error_matches (
          local, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_UNRECOGNIZED)) {
    g_autoptr (JsonObject) resp2 = call_object (
        client, mrtc_request_delayed_event (delay_id, action, TRUE), error);

    return resp2 != NULL;
  }
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

gboolean
mrtc_client_send_to_device (
    MrtcClient *client, const gchar *type, JsonObject *messages, GError **error)
{
  g_autofree gchar *t = escape (type);
  g_autofree gchar *txn = mrtc_client_new_txn_id (client);
  g_autofree gchar *path = g_strdup_printf ("/_matrix/client/v3/sendToDevice/"
                                            "%s/%s",
      t, txn);
  MrtcRequest *req = mrtc_request_new ("PUT", path);
  JsonObject *body = json_object_new ();
  g_autoptr (JsonObject) resp = NULL;

  json_object_set_object_member (body, "messages", json_object_ref (messages));
  mrtc_request_set_body_object (req, body);
  req->secret_body = TRUE;
  resp = call_object (client, req, error);
  return resp != NULL;
}

JsonObject *
mrtc_client_request_openid_token (MrtcClient *client, GError **error)
{
  g_autofree gchar *u = NULL;
  g_autofree gchar *path = NULL;
  g_autofree gchar *user_id = mrtc_client_dup_user_id (client);
  MrtcRequest *req;
  JsonObject *resp;

  if (user_id == NULL) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_NOT_LOGGED_IN,
        "not logged in");
    return NULL;
  }
  u = escape (user_id);
  path = g_strdup_printf ("/_matrix/client/v3/user/%s/openid/request_token", u);
  req = mrtc_request_new ("POST", path);
  req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_SMALL;
  resp = call_object (client, req, error);
  if (resp != NULL && mrtc_json_get_string (resp, "access_token") == NULL) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
        "OpenID token response without access_token");
    g_clear_pointer (&resp, json_object_unref);
  }
  return resp;
}

static JsonArray *
valid_transports (JsonArray *in)
{
  JsonArray *out = json_array_new ();
  guint i;

  for (i = 0; in != NULL && i < json_array_get_length (in); i++) {
    JsonNode *n = json_array_get_element (in, i);

    if (JSON_NODE_HOLDS_OBJECT (n)
        && mrtc_json_get_string (json_node_get_object (n), "type") != NULL)
      json_array_add_element (out, json_node_copy (n));
  }
  return out;
}

JsonArray *
mrtc_client_discover_transports (MrtcClient *client, GError **error)
{
  const gchar *paths[] = { "/_matrix/client/v1/rtc/transports",
    "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", NULL };
  g_autoptr (GError) last = NULL;
  g_autoptr (JsonObject) wk = NULL;
  MrtcRequest *req;
  JsonArray *foci;
  guint i;

  for (i = 0; paths[i] != NULL; i++) {
    g_autoptr (JsonObject) resp = NULL;

    g_clear_error (&last);
    req = mrtc_request_new ("GET", paths[i]);
    req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_SMALL;
    resp = call_object (client, req, &last);
    if (resp != NULL) {
      JsonArray *t
          = valid_transports (mrtc_json_get_array (resp, "rtc_transports"));

      if (json_array_get_length (t) > 0)
        return t;
      json_array_unref (t);
    }
  }

  /* .well-known/matrix/client lives at the server name (the part of our
   * user id after the first ':'); deployments often serve it from the
   * homeserver URL too, which is tried next. */
  {
    g_autofree gchar *user_id = mrtc_client_dup_user_id (client);
    const gchar *colon = user_id != NULL ? strchr (user_id, ':') : NULL;
    g_autofree gchar *at_server_name = NULL;
    const gchar *urls[3] = { NULL, "/.well-known/matrix/client", NULL };

    if (colon != NULL && colon[1] != '\0' && strchr (colon + 1, '/') == NULL) {
      at_server_name
          = g_strdup_printf ("https://%s/.well-known/matrix/client", colon + 1);
      urls[0] = at_server_name;
    }
    for (i = 0; i < G_N_ELEMENTS (urls); i++) {
      if (urls[i] == NULL)
        continue;
      req = mrtc_request_new ("GET", urls[i]);
      req->no_auth = TRUE;
      req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_SMALL;
      req->timeout_ms = 10000;
      g_clear_error (&last);
      g_clear_pointer (&wk, json_object_unref);
      wk = call_object (client, req, &last);
      if (wk == NULL)
        continue;
      foci = mrtc_json_get_array (wk, "org.matrix.msc4143.rtc_foci");
      if (foci == NULL)
        foci = mrtc_json_get_array (wk, "m.rtc_foci");
      if (foci != NULL) {
        JsonArray *t = valid_transports (foci);

        if (json_array_get_length (t) > 0)
          return t;
        json_array_unref (t);
      }
    }
  }
  g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_NOT_FOUND,
      "the homeserver advertises no RTC transports (rtc/transports and "
      ".well-known rtc_foci are empty or missing)%s%s",
      last != NULL ? ": " : "", last != NULL ? last->message : "");
  return NULL;
}

/* Sync loop */

static void sync_once (MrtcClient *client);

static gboolean
sync_retry_cb (gpointer data)
{
  MrtcClient *client = data;

  g_clear_pointer (&client->sync_retry, g_source_unref);
  sync_once (client);
  return G_SOURCE_REMOVE;
}

static void
schedule_sync (MrtcClient *client, guint delay_ms)
{
  if (client->sync_retry != NULL) {
    g_source_destroy (client->sync_retry);
    g_source_unref (client->sync_retry);
  }
  client->sync_retry = g_timeout_source_new (delay_ms);
  g_source_set_callback (client->sync_retry, sync_retry_cb, client, NULL);
  g_source_attach (client->sync_retry, client->context);
}

static void
file_sticky (MrtcClient *client, const gchar *room_id, JsonArray *events)
{
  guint i;

  for (i = 0; events != NULL && i < json_array_get_length (events); i++) {
    JsonNode *n = json_array_get_element (events, i);
    JsonObject *ev;

    if (!JSON_NODE_HOLDS_OBJECT (n))
      continue;
    ev = json_node_get_object (n);
    if (mrtc_json_get_object (ev, "msc4354_sticky") != NULL
        || mrtc_json_get_object (ev, "sticky") != NULL) {
      const gchar *event_id = mrtc_json_get_string (ev, "event_id");
      gint64 expires = mrtc_sticky_event_expiry (ev, client_clock (client));

      mrtc_sticky_map_add (client->sticky, room_id, ev);
      if (event_id != NULL && expires > 0
          && !g_hash_table_contains (client->sticky_seen, event_id)
          && g_hash_table_size (client->sticky_seen) < 100000)
        g_hash_table_insert (client->sticky_seen, g_strdup (event_id),
            g_memdup2 (&expires, sizeof (expires)));
    }
  }
}

static void
handle_sync_response (MrtcClient *client, JsonObject *resp)
{
  JsonObject *rooms, *join, *to_device;
  JsonArray *events;
  const gchar *next_batch;
  guint i;

  next_batch = mrtc_json_get_string (resp, "next_batch");
  if (next_batch != NULL) {
    g_free (client->since);
    client->since = g_strdup (next_batch);
  }

  g_ptr_array_unref (mrtc_sticky_map_expire (client->sticky));
  {
    GHashTableIter iter;
    gpointer v;
    gint64 now = client_clock (client);

    g_hash_table_iter_init (&iter, client->sticky_seen);
    while (g_hash_table_iter_next (&iter, NULL, &v)) {
      if (*(gint64 *)v <= now)
        g_hash_table_iter_remove (&iter);
    }
  }
  rooms = mrtc_json_get_object (resp, "rooms");
  join = mrtc_json_get_object (rooms, "join");
  if (join != NULL) {
    g_autoptr (GList) ids = json_object_get_members (join);
    GList *l;

    for (l = ids; l != NULL; l = l->next) {
      JsonObject *room = mrtc_json_get_object (join, l->data);
      JsonObject *sticky = mrtc_json_get_object (room, "msc4354_sticky");

      if (sticky == NULL)
        sticky = mrtc_json_get_object (room, "sticky");
      file_sticky (client, l->data, mrtc_json_get_array (sticky, "events"));
      file_sticky (client, l->data,
          mrtc_json_get_array (
              mrtc_json_get_object (room, "timeline"), "events"));
    }
  }

  g_atomic_int_inc (&client->sync_count);
  to_device = mrtc_json_get_object (resp, "to_device");
  events = mrtc_json_get_array (to_device, "events");
  for (i = 0; events != NULL && i < json_array_get_length (events); i++) {
    JsonNode *n = json_array_get_element (events, i);

    if (JSON_NODE_HOLDS_OBJECT (n))
      g_signal_emit (
          client, signals[SIGNAL_TO_DEVICE], 0, json_node_get_object (n));
  }
  g_signal_emit (client, signals[SIGNAL_SYNC], 0, resp);
}

typedef struct
{
  MrtcClient *client; /* borrowed: see CallData */
  GCancellable *cancel;
} SyncCall;

static void
on_sync (GObject *source, GAsyncResult *result, gpointer data)
{
  SyncCall *sc = data;
  g_autoptr (MrtcClient) client = NULL;
  g_autoptr (GError) error = NULL;
  JsonNode *node;
  gboolean cancelled;

  node = g_task_propagate_pointer (G_TASK (result), &error);
  cancelled = g_cancellable_is_cancelled (sc->cancel);
  g_object_unref (sc->cancel);
  /* Stopped, or the client is going away (its finalize cancels the sync
   * and waits for this thread): do not touch it. */
  if (!cancelled)
    client = g_weak_ref_get (&sc->client->self);
  g_free (sc);
  if (client == NULL) {
    if (node != NULL)
      json_node_unref (node);
    return;
  }

  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node)) {
    client->sync_backoff_ms = 0;
    handle_sync_response (client, json_node_get_object (node));
    json_node_unref (node);
    if (client->sync_cancel != NULL)
      sync_once (client);
    return;
  }
  if (node != NULL) {
    json_node_unref (node);
    error = g_error_new (MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
        "sync response is not an object");
  }

  g_signal_emit (client, signals[SIGNAL_SYNC_ERROR], 0, error);
  if (g_error_matches (
          error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_UNKNOWN_TOKEN)) {
    /* Logged out (or the token revoked): retrying cannot help. */
    g_info ("sync stopped: %s", error->message);
    g_clear_object (&client->sync_cancel);
    return;
  }
  if (g_error_matches (
          error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_LIMIT_EXCEEDED))
    client->sync_backoff_ms = MAX (client->sync_backoff_ms, 5000);
  client->sync_backoff_ms
      = client->sync_backoff_ms == 0
            ? SYNC_BACKOFF_MIN_MS
            : MIN (client->sync_backoff_ms * 2, SYNC_BACKOFF_MAX_MS);
  g_info ("sync failed (%s), retrying in %u ms", error->message,
      client->sync_backoff_ms);
  if (client->sync_cancel != NULL)
    schedule_sync (client, client->sync_backoff_ms);
}

static void
sync_once (MrtcClient *client)
{
  MrtcRequest *req = mrtc_request_new ("GET", "/_matrix/client/v3/sync");
  g_autofree gchar *timeout = NULL;
  SyncCall *sc;

  if (client->sync_cancel == NULL) {
    mrtc_request_free (req);
    return;
  }
  timeout = g_strdup_printf (
      "%u", client->since != NULL ? client->sync_timeout_ms : 0);
  mrtc_request_add_query (req, "timeout", timeout);
  mrtc_request_add_query (req, "set_presence", "offline");
  mrtc_request_add_query (
      req, "filter", "{\"room\":{\"timeline\":{\"limit\":100}}}");
  if (client->since != NULL)
    mrtc_request_add_query (req, "since", client->since);
  req->timeout_ms = client->sync_timeout_ms + 30000;
  req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_LARGE;
  sc = g_new0 (SyncCall, 1);
  sc->client = client;
  sc->cancel = g_object_ref (client->sync_cancel);
  call_async_full (client, req, client->sync_cancel, FALSE, on_sync, sc);
}

typedef struct
{
  MrtcClient *client;
  guint timeout_ms;
  gboolean hold; /* hold_sync (counted) rather than start_sync */
} SyncStart;

static gboolean
start_sync_cb (gpointer data)
{
  SyncStart *s = data;
  MrtcClient *client = s->client;

  if (s->hold)
    client->sync_holds++;
  else
    client->sync_explicit = TRUE;
  if (client->sync_cancel == NULL) {
    client->sync_cancel = g_cancellable_new ();
    client->sync_timeout_ms = s->timeout_ms;
    sync_once (client);
  }
  return G_SOURCE_REMOVE;
}

static void
sync_start_free (SyncStart *s)
{
  g_object_unref (s->client);
  g_free (s);
}

static void
sync_start (MrtcClient *client, guint timeout_ms, gboolean hold)
{
  SyncStart *s = g_new0 (SyncStart, 1);

  s->client = g_object_ref (client);
  s->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
  s->hold = hold;
  if (g_thread_self () == client->thread) {
    start_sync_cb (s);
    sync_start_free (s);
    return;
  }
  mrtc_client_invoke (
      client, start_sync_cb, s, (GDestroyNotify)sync_start_free);
}

void
mrtc_client_start_sync (MrtcClient *client, guint timeout_ms)
{
  sync_start (client, timeout_ms, FALSE);
}

void
mrtc_client_hold_sync (MrtcClient *client, guint timeout_ms)
{
  sync_start (client, timeout_ms, TRUE);
}

static void
stop_sync_now (MrtcClient *client)
{
  if (client->sync_cancel != NULL) {
    g_cancellable_cancel (client->sync_cancel);
    g_clear_object (&client->sync_cancel);
  }
  if (client->sync_retry != NULL) {
    g_source_destroy (client->sync_retry);
    g_clear_pointer (&client->sync_retry, g_source_unref);
  }
}

static gboolean
stop_sync_cb (gpointer data)
{
  MrtcClient *client = data;

  client->sync_explicit = FALSE;
  if (client->sync_holds == 0)
    stop_sync_now (client);
  return G_SOURCE_REMOVE;
}

static gboolean
release_sync_cb (gpointer data)
{
  MrtcClient *client = data;

  if (client->sync_holds > 0)
    client->sync_holds--;
  if (client->sync_holds == 0 && !client->sync_explicit)
    stop_sync_now (client);
  return G_SOURCE_REMOVE;
}

void
mrtc_client_stop_sync (MrtcClient *client)
{
  if (g_thread_self () == client->thread) {
    stop_sync_cb (client);
    return;
  }
  mrtc_client_invoke (
      client, stop_sync_cb, g_object_ref (client), g_object_unref);
}

void
mrtc_client_release_sync (MrtcClient *client)
{
  if (g_thread_self () == client->thread) {
    release_sync_cb (client);
    return;
  }
  mrtc_client_invoke (
      client, release_sync_cb, g_object_ref (client), g_object_unref);
}

gboolean
mrtc_client_is_syncing (MrtcClient *client)
{
  return client->sync_cancel != NULL;
}

guint
mrtc_client_get_sync_count (MrtcClient *client)
{
  return g_atomic_int_get (&client->sync_count);
}

GPtrArray *
mrtc_client_dup_sticky_events (MrtcClient *client, const gchar *room_id)
{
  g_autoptr (GPtrArray) entries = NULL;
  GPtrArray *out
      = g_ptr_array_new_with_free_func ((GDestroyNotify)json_object_unref);
  gint64 now = client_clock (client);
  guint i;

  g_ptr_array_unref (mrtc_sticky_map_expire (client->sticky));
  entries = mrtc_sticky_map_entries (client->sticky);
  for (i = 0; i < entries->len; i++) {
    MrtcStickyEntry *e = g_ptr_array_index (entries, i);

    if (g_strcmp0 (e->room_id, room_id) == 0)
      g_ptr_array_add (
          out, mrtc_sticky_event_with_ttl (e->event, e->expires_at - now));
  }
  return out;
}

gint64
mrtc_client_get_sticky_expiry (MrtcClient *client, const gchar *event_id)
{
  const MrtcStickyEntry *e
      = mrtc_sticky_map_find_event (client->sticky, event_id);
  gint64 *seen;

  if (e != NULL)
    return e->expires_at;
  seen = event_id != NULL ? g_hash_table_lookup (client->sticky_seen, event_id)
                          : NULL;
  return seen != NULL ? *seen : -1;
}

GPtrArray *
mrtc_client_get_sticky_events (MrtcClient *client, const gchar *room_id)
{
  g_autoptr (GPtrArray) entries = NULL;
  GPtrArray *out = g_ptr_array_new ();
  guint i;

  g_ptr_array_unref (mrtc_sticky_map_expire (client->sticky));
  entries = mrtc_sticky_map_entries (client->sticky);
  for (i = 0; i < entries->len; i++) {
    MrtcStickyEntry *e = g_ptr_array_index (entries, i);

    if (g_strcmp0 (e->room_id, room_id) == 0)
      g_ptr_array_add (out, e->event);
  }
  return out;
}

/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-trace-io.c: saving a routing trace (NPZ, JSONL, CSV), loading
 * Routescope's NPZ, importing vLLM's and SGLang's routed experts.
 * The formats are specified in docs/trace-format.md. */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "rs-error.h"
#include "rs-trace-private.h"

#define TRACE_FORMAT_NAME "routescope-trace"
#define TRACE_FORMAT_VERSION 1

/* Keys rs_trace_save adds to the metadata object of an NPZ. */
static const char *const reserved_keys[] = {
  "format", "version", "n_layer", "n_expert", "k_slots", "k_model", "n_tokens",
};

/* ------------------------------------------------------------------ */
/* Atomic writing: a temporary file next to the destination, fsync,    */
/* rename; on any error the temporary file goes and the destination    */
/* stays as it was.                                                    */

typedef struct {
  const char *path;  /* destination */
  char       *tmp;   /* temporary file in the same folder */
  int         fd;    /* open on tmp, or -1 */
} AtomicFile;

static gboolean
atomic_open (AtomicFile *af, const char *path, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  /* Hidden and in the destination's folder, so that the rename stays on
   * one file system and file managers do not show half-written files. */
  g_autofree char *name = g_strdup_printf (".%s.tmp-XXXXXX", base);
  af->path = path;
  af->tmp = g_build_filename (dir, name, NULL);
  /* 0666 & ~umask like any new file; mkstemp's 0600 would surprise. */
  af->fd = g_mkstemp_full (af->tmp, O_RDWR | O_CLOEXEC, 0666);
  if (af->fd < 0)
    {
      int err = errno;
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "Cannot save the trace to '%s': %s", path,
                   g_strerror (err));
      g_clear_pointer (&af->tmp, g_free);
      return FALSE;
    }
  return TRUE;
}

static void
atomic_abort (AtomicFile *af)
{
  if (af->fd >= 0)
    close (af->fd);
  af->fd = -1;
  if (af->tmp != NULL)
    g_unlink (af->tmp);
  g_clear_pointer (&af->tmp, g_free);
}

/* Flushes the temporary file to disk and renames it over the destination. */
static gboolean
atomic_commit (AtomicFile *af, GError **error)
{
  int err = 0;
  if (af->fd < 0)
    af->fd = open (af->tmp, O_RDONLY | O_CLOEXEC);
  if (af->fd < 0 || fsync (af->fd) != 0)
    err = errno;
  if (af->fd >= 0 && close (af->fd) != 0 && err == 0)
    err = errno;
  af->fd = -1;
  if (err == 0 && g_rename (af->tmp, af->path) != 0)
    err = errno;
  if (err != 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "Cannot save the trace to '%s': %s", af->path,
                   g_strerror (err));
      atomic_abort (af);
      return FALSE;
    }
  g_clear_pointer (&af->tmp, g_free);

  /* The rename itself is durable only once the folder is synced; failing
   * that is not worth failing a save whose data is complete. */
  g_autofree char *dir = g_path_get_dirname (af->path);
  int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0)
    {
      fsync (dfd);
      close (dfd);
    }
  return TRUE;
}

static void
set_write_error (GError **error, const char *path, int err)
{
  g_set_error (error, RS_ERROR, RS_ERROR_IO, "Cannot save the trace to '%s': %s", path,
               g_strerror (err != 0 ? err : EIO));
}

/* ------------------------------------------------------------------ */
/* Number formatting shared by JSONL and CSV.                          */

/* %.9g is the shortest format that gives back every float exactly. The
 * text writers run under the C locale (uselocale, per thread), so the
 * decimal point is '.' whatever the application's locale; plain snprintf
 * is several times faster than g_ascii_formatd, which switches locales
 * on every call. */
static void
append_float (GString *s, float v)
{
  char buf[32];
  int n = snprintf (buf, sizeof buf, "%.9g", (double) v);
  g_string_append_len (s, buf, n);
}

/* JSON has no NaN or infinities: both are written as null. */
static void
append_json_float (GString *s, float v)
{
  if (isfinite (v))
    append_float (s, v);
  else
    g_string_append (s, "null");
}

static void
append_json_string (GString *s, const char *text)
{
  g_autofree char *valid = NULL;
  if (!g_utf8_validate (text, -1, NULL))
    text = valid = g_utf8_make_valid (text, -1);
  g_string_append_c (s, '"');
  for (const unsigned char *p = (const unsigned char *) text; *p != 0; p++)
    {
      switch (*p)
        {
        case '"':  g_string_append (s, "\\\""); break;
        case '\\': g_string_append (s, "\\\\"); break;
        case '\n': g_string_append (s, "\\n"); break;
        case '\r': g_string_append (s, "\\r"); break;
        case '\t': g_string_append (s, "\\t"); break;
        default:
          if (*p < 0x20 || *p == 0x7f)
            g_string_append_printf (s, "\\u%04x", *p);
          else
            g_string_append_c (s, (char) *p);
        }
    }
  g_string_append_c (s, '"');
}

/* ------------------------------------------------------------------ */
/* Writing NPZ.                                                        */

static const char *
npy_descr (RsTraceElem elem)
{
  switch (elem)
    {
    case RS_TRACE_I32: return "<i4";
    case RS_TRACE_U8:  return "|u1";
    case RS_TRACE_F32: return "<f4";
    }
  return "<f4";
}

/* The .npy 1.0 header: magic, version, little-endian u16 length, then
 * the dict padded with spaces and ended by '\n' so that the data starts
 * at a multiple of 64 bytes (what numpy itself writes). */
static char *
npy_header (const char *descr, const int64_t *shape, int ndim, size_t *len)
{
  GString *dict = g_string_new (NULL);
  g_string_append_printf (dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int i = 0; i < ndim; i++)
    g_string_append_printf (dict, "%s%" G_GINT64_FORMAT, i > 0 ? ", " : "", shape[i]);
  g_string_append (dict, ndim == 1 ? ",), }" : "), }");
  size_t used = 10 + dict->len + 1;
  for (size_t pad = (64 - used % 64) % 64; pad > 0; pad--)
    g_string_append_c (dict, ' ');
  g_string_append_c (dict, '\n');

  size_t hlen = dict->len;  /* < 300: no 2.0 header needed */
  char *out = g_malloc (10 + hlen);
  memcpy (out, "\x93NUMPY\x01\x00", 8);
  out[8] = (char) (hlen & 0xff);
  out[9] = (char) (hlen >> 8);
  memcpy (out + 10, dict->str, hlen);
  g_string_free (dict, TRUE);
  *len = 10 + hlen;
  return out;
}

/* A libzip source that streams one array's .npy (header, then the data
 * straight from the trace) so that saving copies nothing. */
typedef struct {
  char          *head;
  size_t         head_len;
  const uint8_t *data;
  size_t         data_len;
  size_t         elem;
  size_t         pos;
  zip_error_t    error;
} NpySource;

static zip_int64_t
npy_source_cb (void *user_data, void *buf, zip_uint64_t len, zip_source_cmd_t cmd)
{
  NpySource *s = user_data;
  size_t total = s->head_len + s->data_len;
  switch (cmd)
    {
    case ZIP_SOURCE_OPEN:
      s->pos = 0;
      return 0;
    case ZIP_SOURCE_READ:
      {
        size_t n = MIN ((size_t) len, total - s->pos);
        uint8_t *out = buf;
        size_t done = 0;
        if (s->pos < s->head_len)
          {
            done = MIN (n, s->head_len - s->pos);
            memcpy (out, s->head + s->pos, done);
          }
        if (done < n)
          {
            size_t o = s->pos + done - s->head_len;
#if G_BYTE_ORDER == G_BIG_ENDIAN
            /* .npy data is little-endian: mirror each element's bytes. */
            for (size_t i = 0; i < n - done; i++, o++)
              out[done + i] = s->data[o / s->elem * s->elem + (s->elem - 1 - o % s->elem)];
#else
            memcpy (out + done, s->data + o, n - done);
#endif
          }
        s->pos += n;
        return (zip_int64_t) n;
      }
    case ZIP_SOURCE_CLOSE:
      return 0;
    case ZIP_SOURCE_STAT:
      {
        if (len < sizeof (zip_stat_t))
          {
            zip_error_set (&s->error, ZIP_ER_INVAL, 0);
            return -1;
          }
        zip_stat_t *st = buf;
        zip_stat_init (st);
        st->size = total;
        st->valid |= ZIP_STAT_SIZE;
        return sizeof (zip_stat_t);
      }
    case ZIP_SOURCE_ERROR:
      return zip_error_to_data (&s->error, buf, len);
    case ZIP_SOURCE_FREE:
      g_free (s->head);
      zip_error_fini (&s->error);
      g_free (s);
      return 0;
    case ZIP_SOURCE_SUPPORTS:
      return zip_source_make_command_bitmap (ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE,
                                             ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE,
                                             ZIP_SOURCE_SUPPORTS, -1);
    default:
      zip_error_set (&s->error, ZIP_ER_OPNOTSUPP, 0);
      return -1;
    }
}

/* Adds @src as @name, deflated or stored. Takes @src. Ids, flags and
 * text shrink several times even at the fastest level; float arrays
 * shrink by a tenth at 15 MB/s, so they are stored. */
static gboolean
zip_add_member (zip_t *za, const char *name, zip_source_t *src, gboolean deflate, const char *path,
                GError **error)
{
  zip_int64_t idx = zip_file_add (za, name, src, ZIP_FL_ENC_UTF_8);
  if (idx < 0)
    {
      zip_source_free (src);
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "Cannot save the trace to '%s': %s: %s", path,
                   name, zip_strerror (za));
      return FALSE;
    }
  if (!deflate || zip_set_file_compression (za, (zip_uint64_t) idx, ZIP_CM_DEFLATE, 1) != 0)
    zip_set_file_compression (za, (zip_uint64_t) idx, ZIP_CM_STORE, 0);
  return TRUE;
}

static gboolean
zip_add_text (zip_t *za, const char *name, char *text, GPtrArray *keep, const char *path,
              GError **error)
{
  g_ptr_array_add (keep, text);  /* must outlive zip_close */
  zip_source_t *src = zip_source_buffer (za, text, strlen (text), 0);
  if (src == NULL)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "Cannot save the trace to '%s': %s", path,
                   zip_strerror (za));
      return FALSE;
    }
  return zip_add_member (za, name, src, TRUE, path, error);
}

static JsonNode *
parse_metadata (const RsTrace *trace)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (trace->metadata_json != NULL
      && json_parser_load_from_data (parser, trace->metadata_json, -1, NULL))
    {
      JsonNode *root = json_parser_get_root (parser);
      if (root != NULL && JSON_NODE_HOLDS_OBJECT (root))
        return json_node_copy (root);
    }
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, json_object_new ());
  return node;
}

static char *
node_to_string (JsonNode *node, gboolean pretty)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_pretty (gen, pretty);
  json_generator_set_root (gen, node);
  return json_generator_to_data (gen, NULL);
}

static gboolean
save_npz (const RsTrace *trace, AtomicFile *af, GError **error)
{
  /* libzip writes its own temporary file next to ours and renames it
   * over ours in zip_close; ours only reserves the name. */
  close (af->fd);
  af->fd = -1;
  int zerr = 0;
  zip_t *za = zip_open (af->tmp, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
  if (za == NULL)
    {
      zip_error_t ze;
      zip_error_init_with_code (&ze, zerr);
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "Cannot save the trace to '%s': %s", af->path,
                   zip_error_strerror (&ze));
      zip_error_fini (&ze);
      return FALSE;
    }
  g_autoptr (GPtrArray) keep = g_ptr_array_new_with_free_func (g_free);
  int64_t T = trace->n_tokens;

  for (int i = 0; i < RS_TRACE_N_ARRAYS; i++)
    {
      const RsTraceArrayInfo *info = &rs_trace_arrays[i];
      if (!rs_trace_records (trace, i))
        continue;
      GArray *a = rs_trace_array (trace, info);
      int64_t shape[3] = { T, trace->n_layer, 0 };
      int ndim = 1;
      switch (info->shape)
        {
        case RS_TRACE_SHAPE_T:   ndim = 1; break;
        case RS_TRACE_SHAPE_TL:  ndim = 2; break;
        case RS_TRACE_SHAPE_TLE: ndim = 3; shape[2] = trace->n_expert; break;
        case RS_TRACE_SHAPE_TLK: ndim = 3; shape[2] = trace->k_slots; break;
        }
      size_t es = rs_trace_elem_size (info->elem);
      size_t n = (size_t) (T * rs_trace_array_stride (trace, info));  /* = a->len, checked */

      NpySource *s = g_new0 (NpySource, 1);
      s->head = npy_header (npy_descr (info->elem), shape, ndim, &s->head_len);
      s->data = (const uint8_t *) a->data;
      s->data_len = n * es;
      s->elem = es;
      zip_error_init (&s->error);
      zip_source_t *src = zip_source_function (za, npy_source_cb, s);
      if (src == NULL)
        {
          npy_source_cb (s, NULL, 0, ZIP_SOURCE_FREE);
          g_set_error (error, RS_ERROR, RS_ERROR_IO, "Cannot save the trace to '%s': %s",
                       af->path, zip_strerror (za));
          zip_discard (za);
          return FALSE;
        }
      g_autofree char *name = g_strconcat (info->name, ".npy", NULL);
      if (!zip_add_member (za, name, src, info->elem != RS_TRACE_F32, af->path, error))
        {
          zip_discard (za);
          return FALSE;
        }
    }

  /* token_text.json: a JSON array of T strings. */
  {
    GString *s = g_string_sized_new (16 + (gsize) T * 8);
    g_string_append_c (s, '[');
    for (int64_t t = 0; t < T; t++)
      {
        if (t > 0)
          g_string_append_c (s, ',');
        const char *text = t < trace->token_text->len ? g_ptr_array_index (trace->token_text, t)
                                                      : NULL;
        append_json_string (s, text != NULL ? text : "");
      }
    g_string_append (s, "]\n");
    if (!zip_add_text (za, "token_text.json", g_string_free (s, FALSE), keep, af->path, error))
      {
        zip_discard (za);
        return FALSE;
      }
  }

  /* metadata.json: the trace's object plus the dimensions. */
  {
    g_autoptr (JsonNode) meta = parse_metadata (trace);
    JsonObject *o = json_node_get_object (meta);
    json_object_set_string_member (o, "format", TRACE_FORMAT_NAME);
    json_object_set_int_member (o, "version", TRACE_FORMAT_VERSION);
    json_object_set_int_member (o, "n_layer", trace->n_layer);
    json_object_set_int_member (o, "n_expert", trace->n_expert);
    json_object_set_int_member (o, "k_slots", trace->k_slots);
    json_object_set_int_member (o, "k_model", trace->k_model);
    json_object_set_int_member (o, "n_tokens", T);
    if (!zip_add_text (za, "metadata.json", node_to_string (meta, TRUE), keep, af->path, error))
      {
        zip_discard (za);
        return FALSE;
      }
  }

  if (zip_close (za) != 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "Cannot save the trace to '%s': %s", af->path,
                   zip_strerror (za));
      zip_discard (za);
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Writing JSONL and CSV.                                              */

#define ARRAY_AT(trace, field, type, index) (((const type *) (const void *) (trace)->field->data)[index])

static gboolean
records (const RsTrace *trace, const GArray *a)
{
  for (int i = 0; i < RS_TRACE_N_ARRAYS; i++)
    if (rs_trace_array (trace, &rs_trace_arrays[i]) == a)
      return rs_trace_records (trace, i);
  return FALSE;
}

/* Writes @s and empties it; remembers the first error. */
static void
flush_line (FILE *f, GString *s, int *err)
{
  if (*err == 0 && s->len > 0 && fwrite (s->str, 1, s->len, f) != s->len)
    *err = errno != 0 ? errno : EIO;
  g_string_truncate (s, 0);
}

static void
append_filled_ints (GString *s, const int32_t *ids, const int32_t *v, int K, gboolean null_neg)
{
  g_string_append_c (s, '[');
  gboolean first = TRUE;
  for (int j = 0; j < K; j++)
    if (ids[j] >= 0)
      {
        if (!first)
          g_string_append_c (s, ',');
        first = FALSE;
        if (null_neg && v[j] < 0)
          g_string_append (s, "null");
        else
          g_string_append_printf (s, "%d", v[j]);
      }
  g_string_append_c (s, ']');
}

static void
append_filled_floats (GString *s, const int32_t *ids, const float *v, int K)
{
  g_string_append_c (s, '[');
  gboolean first = TRUE;
  for (int j = 0; j < K; j++)
    if (ids[j] >= 0)
      {
        if (!first)
          g_string_append_c (s, ',');
        first = FALSE;
        append_json_float (s, v[j]);
      }
  g_string_append_c (s, ']');
}

static void
append_float_row (GString *s, const float *v, int n)
{
  g_string_append_c (s, '[');
  for (int e = 0; e < n; e++)
    {
      if (e > 0)
        g_string_append_c (s, ',');
      append_json_float (s, v[e]);
    }
  g_string_append_c (s, ']');
}

static void
write_jsonl (const RsTrace *trace, FILE *f, int *err)
{
  const int L = trace->n_layer, E = trace->n_expert, K = trace->k_slots;
  GString *s = g_string_sized_new (4096);

  /* Header line. */
  {
    g_autoptr (JsonNode) meta = parse_metadata (trace);
    g_autoptr (JsonBuilder) b = json_builder_new ();
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "format");
    json_builder_add_string_value (b, TRACE_FORMAT_NAME);
    json_builder_set_member_name (b, "version");
    json_builder_add_int_value (b, TRACE_FORMAT_VERSION);
    json_builder_set_member_name (b, "metadata");
    json_builder_add_value (b, json_node_copy (meta));
    json_builder_set_member_name (b, "n_layer");
    json_builder_add_int_value (b, L);
    json_builder_set_member_name (b, "n_expert");
    json_builder_add_int_value (b, E);
    json_builder_set_member_name (b, "k_slots");
    json_builder_add_int_value (b, K);
    json_builder_set_member_name (b, "k_model");
    json_builder_add_int_value (b, trace->k_model);
    json_builder_set_member_name (b, "n_tokens");
    json_builder_add_int_value (b, trace->n_tokens);
    json_builder_end_object (b);
    g_autoptr (JsonNode) root = json_builder_get_root (b);
    g_autofree char *line = node_to_string (root, FALSE);
    g_string_append (s, line);
    g_string_append_c (s, '\n');
    flush_line (f, s, err);
  }

  gboolean has_prob = records (trace, trace->token_prob);
  gboolean has_entropy = records (trace, trace->next_entropy);
  gboolean has_w = records (trace, trace->topk_weights);
  gboolean has_base = records (trace, trace->base_topk_ids);
  gboolean has_base_w = records (trace, trace->base_topk_weights);
  gboolean has_maxabs = records (trace, trace->expert_out_maxabs);
  gboolean has_channel = records (trace, trace->expert_out_channel);
  gboolean has_resid = records (trace, trace->resid_maxabs);
  gboolean has_gate = records (trace, trace->shared_gate);
  gboolean has_logits = records (trace, trace->router_logits);
  gboolean has_scores = records (trace, trace->router_scores);

  for (int64_t t = 0; t < trace->n_tokens && *err == 0; t++)
    {
      g_string_append_printf (s, "{\"t\":%" G_GINT64_FORMAT ",\"id\":%d,\"text\":", t,
                              ARRAY_AT (trace, token_ids, int32_t, t));
      const char *text = g_ptr_array_index (trace->token_text, t);
      append_json_string (s, text != NULL ? text : "");
      g_string_append_printf (s, ",\"prompt\":%s,\"prob\":",
                              ARRAY_AT (trace, is_prompt, uint8_t, t) ? "true" : "false");
      append_json_float (s, has_prob ? ARRAY_AT (trace, token_prob, float, t) : NAN);
      g_string_append (s, ",\"entropy\":");
      append_json_float (s, has_entropy ? ARRAY_AT (trace, next_entropy, float, t) : NAN);
      g_string_append (s, ",\"layers\":[");

      gboolean first_layer = TRUE;
      for (int l = 0; l < L; l++)
        {
          int64_t tl = t * L + l;
          const int32_t *ids = &ARRAY_AT (trace, topk_ids, int32_t, tl * K);
          const int32_t *base = has_base ? &ARRAY_AT (trace, base_topk_ids, int32_t, tl * K) : NULL;
          const float *logits = has_logits ? &ARRAY_AT (trace, router_logits, float, tl * E) : NULL;

          /* A layer without experts has no slot filled and no logits. */
          gboolean any = FALSE;
          for (int j = 0; j < K && !any; j++)
            any = ids[j] >= 0 || (base != NULL && base[j] >= 0);
          for (int e = 0; logits != NULL && e < E && !any; e++)
            any = !isnan (logits[e]);
          if (!any)
            continue;

          if (!first_layer)
            g_string_append_c (s, ',');
          first_layer = FALSE;
          g_string_append_printf (s, "{\"layer\":%d,\"experts\":", l);
          append_filled_ints (s, ids, ids, K, FALSE);
          const float *w = has_w ? &ARRAY_AT (trace, topk_weights, float, tl * K) : NULL;
          if (w != NULL)
            {
              g_string_append (s, ",\"weights\":");
              append_filled_floats (s, ids, w, K);
            }
          if (base != NULL)
            {
              const float *bw = has_base_w ? &ARRAY_AT (trace, base_topk_weights, float, tl * K)
                                           : NULL;
              gboolean differs = memcmp (base, ids, sizeof (int32_t) * K) != 0
                                 || (bw != NULL && w != NULL && memcmp (bw, w, sizeof (float) * K) != 0);
              if (differs)
                {
                  g_string_append (s, ",\"base_experts\":");
                  append_filled_ints (s, base, base, K, FALSE);
                  if (bw != NULL)
                    {
                      g_string_append (s, ",\"base_weights\":");
                      append_filled_floats (s, base, bw, K);
                    }
                }
            }
          if (has_maxabs)
            {
              g_string_append (s, ",\"maxabs\":");
              append_filled_floats (s, ids, &ARRAY_AT (trace, expert_out_maxabs, float, tl * K), K);
            }
          if (has_channel)
            {
              g_string_append (s, ",\"channel\":");
              append_filled_ints (s, ids, &ARRAY_AT (trace, expert_out_channel, int32_t, tl * K), K,
                                  TRUE);
            }
          if (has_resid)
            {
              g_string_append (s, ",\"resid_maxabs\":");
              append_json_float (s, ARRAY_AT (trace, resid_maxabs, float, tl));
            }
          if (has_gate)
            {
              g_string_append (s, ",\"shared_gate\":");
              append_json_float (s, ARRAY_AT (trace, shared_gate, float, tl));
            }
          if (logits != NULL)
            {
              g_string_append (s, ",\"logits\":");
              append_float_row (s, logits, E);
            }
          if (has_scores)
            {
              g_string_append (s, ",\"scores\":");
              append_float_row (s, &ARRAY_AT (trace, router_scores, float, tl * E), E);
            }
          g_string_append_c (s, '}');
        }
      g_string_append (s, "]}\n");
      flush_line (f, s, err);
    }
  g_string_free (s, TRUE);
}

/* CSV cells: absent values (NaN, id -1, unrecorded arrays) are empty,
 * which pandas reads as NaN. */
static void
csv_float (GString *s, gboolean have, float v)
{
  g_string_append_c (s, ',');
  if (have && !isnan (v))
    append_float (s, v);
}

static void
csv_int (GString *s, gboolean have, int32_t v)
{
  g_string_append_c (s, ',');
  if (have && v >= 0)
    g_string_append_printf (s, "%d", v);
}

static void
write_csv (const RsTrace *trace, FILE *f, int *err)
{
  const int L = trace->n_layer, K = trace->k_slots;
  GString *s = g_string_sized_new (4096);
  g_string_append (s, "token,layer,rank,expert,weight,base_expert,base_weight,out_maxabs,out_channel\n");
  flush_line (f, s, err);

  gboolean has_w = records (trace, trace->topk_weights);
  gboolean has_base = records (trace, trace->base_topk_ids);
  gboolean has_base_w = records (trace, trace->base_topk_weights);
  gboolean has_maxabs = records (trace, trace->expert_out_maxabs);
  gboolean has_channel = records (trace, trace->expert_out_channel);

  for (int64_t t = 0; t < trace->n_tokens && *err == 0; t++)
    {
      for (int l = 0; l < L; l++)
        for (int j = 0; j < K; j++)
          {
            int64_t i = (t * L + l) * K + j;
            int32_t e = ARRAY_AT (trace, topk_ids, int32_t, i);
            int32_t b = has_base ? ARRAY_AT (trace, base_topk_ids, int32_t, i) : -1;
            /* One row per filled slot, of what ran or of what the untouched
             * router chose (an intervention may have emptied the slot). */
            if (e < 0 && b < 0)
              continue;
            g_string_append_printf (s, "%" G_GINT64_FORMAT ",%d,%d", t, l, j);
            csv_int (s, TRUE, e);
            csv_float (s, has_w && e >= 0, has_w ? ARRAY_AT (trace, topk_weights, float, i) : 0);
            csv_int (s, has_base, b);
            csv_float (s, has_base_w && b >= 0,
                       has_base_w ? ARRAY_AT (trace, base_topk_weights, float, i) : 0);
            csv_float (s, has_maxabs && e >= 0,
                       has_maxabs ? ARRAY_AT (trace, expert_out_maxabs, float, i) : 0);
            csv_int (s, has_channel && e >= 0,
                     has_channel ? ARRAY_AT (trace, expert_out_channel, int32_t, i) : -1);
            g_string_append_c (s, '\n');
          }
      /* One write per token keeps the buffer small for long traces. */
      flush_line (f, s, err);
    }
  g_string_free (s, TRUE);
}

static gboolean
save_text (const RsTrace *trace, AtomicFile *af, RsTraceFormat format, GError **error)
{
  FILE *f = fdopen (af->fd, "w");
  if (f == NULL)
    {
      set_write_error (error, af->path, errno);
      return FALSE;
    }
  af->fd = -1;  /* owned by f now */
  setvbuf (f, NULL, _IOFBF, 1 << 16);
  int err = 0;
  errno = 0;
  locale_t c_locale = newlocale (LC_ALL_MASK, "C", (locale_t) 0);
  locale_t old_locale = c_locale != (locale_t) 0 ? uselocale (c_locale) : (locale_t) 0;
  if (format == RS_TRACE_FORMAT_JSONL)
    write_jsonl (trace, f, &err);
  else
    write_csv (trace, f, &err);
  if (c_locale != (locale_t) 0)
    {
      uselocale (old_locale);
      freelocale (c_locale);
    }
  if (err == 0 && fflush (f) != 0)
    err = errno;
  if (err == 0 && fsync (fileno (f)) != 0)
    err = errno;
  if (fclose (f) != 0 && err == 0)
    err = errno;
  if (err != 0)
    {
      set_write_error (error, af->path, err);
      return FALSE;
    }
  return TRUE;
}

/* The writers index every recorded array up to n_tokens: a trace whose
 * arrays were resized by hand is refused rather than read past its end. */
static gboolean
check_consistent (const RsTrace *trace, const char *path, GError **error)
{
  if (trace->n_tokens < 0 || trace->token_text->len != (guint) trace->n_tokens)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID,
                   "Cannot save the trace to '%s': it has %" G_GINT64_FORMAT " tokens but %u texts",
                   path, trace->n_tokens, trace->token_text->len);
      return FALSE;
    }
  for (int i = 0; i < RS_TRACE_N_ARRAYS; i++)
    {
      const RsTraceArrayInfo *info = &rs_trace_arrays[i];
      int64_t want = rs_trace_records (trace, i) ? trace->n_tokens * rs_trace_array_stride (trace, info) : 0;
      if ((int64_t) rs_trace_array (trace, info)->len != want)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_INVALID,
                       "Cannot save the trace to '%s': %s holds %u values, not %" G_GINT64_FORMAT,
                       path, info->name, rs_trace_array (trace, info)->len, want);
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
rs_trace_save (const RsTrace *trace, const char *path, RsTraceFormat format, GError **error)
{
  g_return_val_if_fail (trace != NULL && path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_consistent (trace, path, error))
    return FALSE;

  AtomicFile af = { 0 };
  if (!atomic_open (&af, path, error))
    return FALSE;
  gboolean ok;
  switch (format)
    {
    case RS_TRACE_FORMAT_NPZ:
      ok = save_npz (trace, &af, error);
      break;
    case RS_TRACE_FORMAT_JSONL:
    case RS_TRACE_FORMAT_CSV:
      ok = save_text (trace, &af, format, error);
      break;
    default:
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "Cannot save the trace to '%s': unknown format %d",
                   path, (int) format);
      ok = FALSE;
    }
  if (!ok)
    {
      atomic_abort (&af);
      return FALSE;
    }
  return atomic_commit (&af, error);
}

/* ------------------------------------------------------------------ */
/* Reading .npy, from a zip member or from memory. Every header field  */
/* is checked before it is used; nothing is allocated on the word of a */
/* header alone (buffers grow as data actually arrives).               */

typedef struct {
  zip_file_t    *zf;    /* a zip member, or NULL: read from mem */
  const uint8_t *mem;
  size_t         mem_len;
  size_t         pos;
  const char    *where; /* "'run.npz' member 'topk_ids.npy'", for messages */
} Src;

/* Reads up to @n bytes; fewer only at the end. -1 on a read error. */
static gssize
src_read (Src *s, void *buf, size_t n, GError **error)
{
  if (s->zf == NULL)
    {
      size_t k = MIN (n, s->mem_len - s->pos);
      memcpy (buf, s->mem + s->pos, k);
      s->pos += k;
      return (gssize) k;
    }
  size_t got = 0;
  while (got < n)
    {
      zip_int64_t r = zip_fread (s->zf, (uint8_t *) buf + got, n - got);
      if (r < 0)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: cannot read: %s", s->where,
                       zip_file_strerror (s->zf));
          return -1;
        }
      if (r == 0)
        break;
      got += (size_t) r;
    }
  return (gssize) got;
}

typedef enum { NPY_U1, NPY_I2, NPY_I4, NPY_I8, NPY_F4 } NpyType;

static const struct {
  const char *descr;
  size_t      size;
} npy_types[] = {
  [NPY_U1] = { "|u1", 1 },
  [NPY_I2] = { "<i2", 2 },
  [NPY_I4] = { "<i4", 4 },
  [NPY_I8] = { "<i8", 8 },
  [NPY_F4] = { "<f4", 4 },
};

#define NPY_MAX_DIMS 8
#define NPY_MAX_HEADER (1u << 20)

typedef struct {
  NpyType  type;
  int      ndim;
  int64_t  shape[NPY_MAX_DIMS];
  uint64_t count;   /* elements */
  uint64_t nbytes;  /* data bytes */
} NpyInfo;

static char *
shape_string (const int64_t *shape, int ndim)
{
  GString *s = g_string_new ("(");
  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i > 0 ? ", " : "", shape[i]);
  g_string_append (s, ndim == 1 ? ",)" : ")");
  return g_string_free (s, FALSE);
}

static void
skip_ws (const char **p, const char *end)
{
  while (*p < end && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r'))
    (*p)++;
}

/* A Python string literal without escapes: 'abc' or "abc". */
static char *
parse_quoted (const char **p, const char *end)
{
  if (*p >= end || (**p != '\'' && **p != '"'))
    return NULL;
  char q = **p;
  const char *start = ++*p;
  while (*p < end && **p != q)
    {
      if (**p == '\\')
        return NULL;
      (*p)++;
    }
  if (*p >= end)
    return NULL;
  char *out = g_strndup (start, (gsize) (*p - start));
  (*p)++;
  return out;
}

#define HEADER_ERROR(code, ...) \
  do { g_set_error (error, RS_ERROR, code, __VA_ARGS__); return FALSE; } while (0)

/* The header dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (5, 3, 8), } */
static gboolean
npy_parse_dict (const char *text, size_t len, NpyInfo *info, const char *where, GError **error)
{
  const char *p = text, *end = text + len;
  gboolean have_descr = FALSE, have_order = FALSE, have_shape = FALSE;

  if (memchr (text, 0, len) != NULL)
    HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (NUL byte)", where);
  skip_ws (&p, end);
  if (p >= end || *p != '{')
    HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (no '{')", where);
  p++;
  for (;;)
    {
      skip_ws (&p, end);
      if (p < end && *p == '}')
        {
          p++;
          break;
        }
      g_autofree char *key = parse_quoted (&p, end);
      if (key == NULL)
        HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (expected a quoted key at offset %d)",
                      where, (int) (p - text));
      skip_ws (&p, end);
      if (p >= end || *p != ':')
        HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (no ':' after '%s')", where, key);
      p++;
      skip_ws (&p, end);

      if (strcmp (key, "descr") == 0 && !have_descr)
        {
          g_autofree char *descr = parse_quoted (&p, end);
          if (descr == NULL)
            HEADER_ERROR (RS_ERROR_UNSUPPORTED,
                          "%s: .npy descr is not a plain dtype string (structured arrays are not "
                          "supported)", where);
          gboolean found = FALSE;
          for (size_t i = 0; i < G_N_ELEMENTS (npy_types) && !found; i++)
            if (strcmp (descr, npy_types[i].descr) == 0)
              {
                info->type = (NpyType) i;
                found = TRUE;
              }
          if (!found)
            HEADER_ERROR (RS_ERROR_UNSUPPORTED,
                          "%s: .npy dtype '%s' is not supported (Routescope reads <i2, <i4, <i8, "
                          "<f4 and |u1)", where, descr);
          have_descr = TRUE;
        }
      else if (strcmp (key, "fortran_order") == 0 && !have_order)
        {
          if (end - p >= 5 && memcmp (p, "False", 5) == 0)
            p += 5;
          else if (end - p >= 4 && memcmp (p, "True", 4) == 0)
            HEADER_ERROR (RS_ERROR_UNSUPPORTED,
                          "%s: Fortran-ordered .npy arrays are not supported", where);
          else
            HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (fortran_order is not a bool)",
                          where);
          have_order = TRUE;
        }
      else if (strcmp (key, "shape") == 0 && !have_shape)
        {
          if (p >= end || *p != '(')
            HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (shape is not a tuple)", where);
          p++;
          info->ndim = 0;
          for (;;)
            {
              skip_ws (&p, end);
              if (p < end && *p == ')')
                {
                  p++;
                  break;
                }
              if (p >= end || !g_ascii_isdigit (*p))
                HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (shape holds a non-number)",
                              where);
              if (info->ndim == NPY_MAX_DIMS)
                HEADER_ERROR (RS_ERROR_UNSUPPORTED, "%s: .npy arrays of more than %d dimensions "
                              "are not supported", where, NPY_MAX_DIMS);
              int64_t v = 0;
              while (p < end && g_ascii_isdigit (*p))
                {
                  if (v > (G_MAXINT64 - 9) / 10)
                    HEADER_ERROR (RS_ERROR_FORMAT, "%s: .npy shape dimension overflows", where);
                  v = v * 10 + (*p++ - '0');
                }
              info->shape[info->ndim++] = v;
              skip_ws (&p, end);
              if (p < end && *p == ',')
                p++;
              else if (p >= end || *p != ')')
                HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (shape tuple)", where);
            }
          have_shape = TRUE;
        }
      else
        HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (unexpected or repeated key '%s')",
                      where, key);

      skip_ws (&p, end);
      if (p < end && *p == ',')
        p++;
      else if (p < end && *p == '}')
        {
          p++;
          break;
        }
      else
        HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (expected ',' or '}')", where);
    }
  skip_ws (&p, end);
  if (p != end)
    HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (text after the dict)", where);
  if (!have_descr || !have_order || !have_shape)
    HEADER_ERROR (RS_ERROR_FORMAT, "%s: bad .npy header (needs descr, fortran_order and shape)",
                  where);

  /* Element and byte counts, refusing anything that would overflow. */
  uint64_t count = 1;
  for (int i = 0; i < info->ndim; i++)
    {
      uint64_t d = (uint64_t) info->shape[i];
      if (d != 0 && count > (uint64_t) G_MAXINT64 / d)
        {
          g_autofree char *shape = shape_string (info->shape, info->ndim);
          HEADER_ERROR (RS_ERROR_FORMAT, "%s: .npy shape %s overflows", where, shape);
        }
      count *= d;
    }
  size_t es = npy_types[info->type].size;
  if (count > (uint64_t) G_MAXINT64 / es)
    {
      g_autofree char *shape = shape_string (info->shape, info->ndim);
      HEADER_ERROR (RS_ERROR_FORMAT, "%s: .npy shape %s overflows", where, shape);
    }
  info->count = count;
  info->nbytes = count * es;
  return TRUE;
}

static gboolean
npy_read_header (Src *s, NpyInfo *info, GError **error)
{
  uint8_t pre[12];
  gssize r = src_read (s, pre, 10, error);
  if (r < 0)
    return FALSE;
  if (r < 10 || memcmp (pre, "\x93NUMPY", 6) != 0)
    {
      if (r >= 6 && memcmp (pre, "\x93NUMPY", 6) != 0)
        HEADER_ERROR (RS_ERROR_FORMAT, "%s: not a .npy array (bad magic)", s->where);
      HEADER_ERROR (RS_ERROR_FORMAT, "%s: truncated .npy header (%d bytes)", s->where, (int) r);
    }
  uint32_t hlen;
  if (pre[6] == 1 && pre[7] == 0)
    hlen = pre[8] | (uint32_t) pre[9] << 8;
  else if (pre[6] == 2 && pre[7] == 0)
    {
      r = src_read (s, pre + 10, 2, error);
      if (r < 0)
        return FALSE;
      if (r < 2)
        HEADER_ERROR (RS_ERROR_FORMAT, "%s: truncated .npy header", s->where);
      hlen = pre[8] | (uint32_t) pre[9] << 8 | (uint32_t) pre[10] << 16 | (uint32_t) pre[11] << 24;
    }
  else if (pre[6] == 3 && pre[7] == 0)
    HEADER_ERROR (RS_ERROR_UNSUPPORTED, "%s: .npy version 3.0 (UTF-8 header) is not supported",
                  s->where);
  else
    HEADER_ERROR (RS_ERROR_FORMAT, "%s: unknown .npy version %d.%d", s->where, pre[6], pre[7]);
  if (hlen == 0 || hlen > NPY_MAX_HEADER)
    HEADER_ERROR (RS_ERROR_FORMAT, "%s: implausible .npy header length %u", s->where, hlen);

  g_autofree char *text = g_malloc (hlen);
  r = src_read (s, text, hlen, error);
  if (r < 0)
    return FALSE;
  if ((uint32_t) r < hlen)
    HEADER_ERROR (RS_ERROR_FORMAT, "%s: truncated .npy header (%d of %u bytes)", s->where,
                  (int) r, hlen);
  return npy_parse_dict (text, hlen, info, s->where, error);
}

/* After the data: anything more is an error (a shape that lies). */
static gboolean
src_expect_end (Src *s, GError **error)
{
  uint8_t extra[64];
  gssize r = src_read (s, extra, sizeof extra, error);
  if (r < 0)
    return FALSE;
  if (r > 0)
    HEADER_ERROR (RS_ERROR_FORMAT, "%s: data longer than the .npy shape says", s->where);
  return TRUE;
}

/* Reads @info->nbytes of data in chunks, calling @sink on each. */
static gboolean
npy_stream_data (Src *s, const NpyInfo *info,
                 void (*sink) (void *user, const uint8_t *data, size_t n), void *user,
                 GError **error)
{
  enum { CHUNK = 1 << 16 };  /* a multiple of every element size */
  g_autofree uint8_t *buf = g_malloc (CHUNK);
  uint64_t left = info->nbytes;
  while (left > 0)
    {
      size_t want = (size_t) MIN (left, (uint64_t) CHUNK);
      gssize r = src_read (s, buf, want, error);
      if (r < 0)
        return FALSE;
      if ((size_t) r < want)
        HEADER_ERROR (RS_ERROR_FORMAT, "%s: truncated .npy data (%" G_GUINT64_FORMAT " of %"
                      G_GUINT64_FORMAT " bytes)", s->where, info->nbytes - left + (uint64_t) r,
                      info->nbytes);
#if G_BYTE_ORDER == G_BIG_ENDIAN
      size_t es = npy_types[info->type].size;
      for (size_t i = 0; es > 1 && i < want; i += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--)
          {
            uint8_t tmp = buf[i + a];
            buf[i + a] = buf[i + b];
            buf[i + b] = tmp;
          }
#endif
      sink (user, buf, want);
      left -= want;
    }
  return src_expect_end (s, error);
}

static void
sink_garray (void *user, const uint8_t *data, size_t n)
{
  GArray *a = user;
  g_array_append_vals (a, data, (guint) (n / g_array_get_element_size (a)));
}

/* Integer arrays of any of the integer dtypes, as int32. */
typedef struct {
  NpyType  type;
  GArray  *out;  /* int32 */
  gboolean overflow;
} IntSink;

static void
sink_ints (void *user, const uint8_t *data, size_t n)
{
  IntSink *is = user;
  size_t es = npy_types[is->type].size;
  for (size_t i = 0; i < n; i += es)
    {
      int64_t v;
      switch (is->type)
        {
        case NPY_U1: v = data[i]; break;
        case NPY_I2: { int16_t x; memcpy (&x, data + i, 2); v = x; } break;
        case NPY_I4: { int32_t x; memcpy (&x, data + i, 4); v = x; } break;
        case NPY_I8: { int64_t x; memcpy (&x, data + i, 8); v = x; } break;
        default: v = 0; is->overflow = TRUE; break;
        }
      if (v < G_MININT32 || v > G_MAXINT32)
        is->overflow = TRUE;
      int32_t v32 = (int32_t) v;
      g_array_append_val (is->out, v32);
    }
}

static GArray *
npy_read_ints (Src *s, NpyInfo *info, GError **error)
{
  if (!npy_read_header (s, info, error))
    return NULL;
  if (info->type == NPY_F4)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: expected integers, found dtype <f4",
                   s->where);
      return NULL;
    }
  if (info->count > G_MAXUINT)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_RESOURCE, "%s: too many elements", s->where);
      return NULL;
    }
  IntSink is = { info->type, g_array_new (FALSE, FALSE, sizeof (int32_t)), FALSE };
  if (!npy_stream_data (s, info, sink_ints, &is, error))
    {
      g_array_unref (is.out);
      return NULL;
    }
  if (is.overflow)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: values out of the int32 range",
                   s->where);
      g_array_unref (is.out);
      return NULL;
    }
  return is.out;
}

/* ------------------------------------------------------------------ */
/* Zip helpers for reading.                                            */

static zip_t *
open_zip (const char *path, GError **error)
{
  int zerr = 0;
  zip_t *za = zip_open (path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
  if (za != NULL)
    return za;
  zip_error_t ze;
  zip_error_init_with_code (&ze, zerr);
  gboolean io = zerr == ZIP_ER_NOENT || zerr == ZIP_ER_OPEN || zerr == ZIP_ER_READ;
  g_set_error (error, RS_ERROR, io ? RS_ERROR_IO : RS_ERROR_FORMAT,
               io ? "Cannot open '%s': %s" : "'%s' is not a valid NPZ (zip) file: %s", path,
               zip_error_strerror (&ze));
  zip_error_fini (&ze);
  return NULL;
}

static zip_file_t *
open_member (zip_t *za, const char *path, const char *name, gboolean required, GError **error)
{
  zip_int64_t idx = zip_name_locate (za, name, 0);
  if (idx < 0)
    {
      if (required)
        g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "'%s' has no member '%s'", path, name);
      return NULL;
    }
  zip_file_t *zf = zip_fopen_index (za, (zip_uint64_t) idx, 0);
  if (zf == NULL)
    g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "'%s' member '%s': cannot read: %s", path,
                 name, zip_strerror (za));
  return zf;
}

static gboolean
zip_has (zip_t *za, const char *name)
{
  return zip_name_locate (za, name, 0) >= 0;
}

/* A whole (text) member, NUL-terminated, at most @limit bytes. */
static char *
read_member_text (zip_t *za, const char *path, const char *name, size_t limit, size_t *len,
                  GError **error)
{
  zip_file_t *zf = open_member (za, path, name, TRUE, error);
  if (zf == NULL)
    return NULL;
  g_autofree char *where = g_strdup_printf ("'%s' member '%s'", path, name);
  Src s = { .zf = zf, .where = where };
  size_t cap = 4096, n = 0;
  char *buf = g_malloc (cap + 1);
  for (;;)
    {
      gssize r = src_read (&s, buf + n, cap - n, error);
      if (r < 0)
        goto fail;
      n += (size_t) r;
      if (n < cap)
        break;
      if (cap >= limit)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: larger than %zu bytes", where,
                       limit);
          goto fail;
        }
      cap = MIN (cap * 2, limit);
      char *grown = g_try_realloc (buf, cap + 1);
      if (grown == NULL)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_RESOURCE, "%s: out of memory", where);
          goto fail;
        }
      buf = grown;
    }
  zip_fclose (zf);
  buf[n] = 0;
  *len = n;
  return buf;

fail:
  zip_fclose (zf);
  g_free (buf);
  return NULL;
}

static JsonNode *
parse_json_text (const char *text, size_t len, const char *where, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) err = NULL;
  if (!json_parser_load_from_data (parser, text, (gssize) len, &err))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: not valid JSON: %s", where,
                   err->message);
      return NULL;
    }
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: empty JSON", where);
      return NULL;
    }
  return json_node_copy (root);
}

static gboolean
node_int (JsonNode *n, int64_t *out)
{
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (n);
  return TRUE;
}

static gboolean
member_int (JsonObject *o, const char *key, int64_t *out)
{
  return o != NULL && json_object_has_member (o, key)
         && node_int (json_object_get_member (o, key), out);
}

static JsonObject *
member_object (JsonObject *o, const char *key)
{
  JsonNode *n = o != NULL && json_object_has_member (o, key) ? json_object_get_member (o, key) : NULL;
  return n != NULL && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

static JsonArray *
member_array (JsonObject *o, const char *key)
{
  JsonNode *n = o != NULL && json_object_has_member (o, key) ? json_object_get_member (o, key) : NULL;
  return n != NULL && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

static const char *
member_string (JsonObject *o, const char *key)
{
  JsonNode *n = o != NULL && json_object_has_member (o, key) ? json_object_get_member (o, key) : NULL;
  return n != NULL && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING
           ? json_node_get_string (n) : NULL;
}

/* ------------------------------------------------------------------ */
/* Loading Routescope's NPZ.                                           */

static gboolean
meta_int (JsonObject *o, const char *key, int64_t lo, int64_t hi, int64_t *out, const char *path,
          GError **error)
{
  if (!member_int (o, key, out))
    HEADER_ERROR (RS_ERROR_FORMAT, "'%s' member 'metadata.json': no integer '%s'", path, key);
  if (*out < lo || *out > hi)
    HEADER_ERROR (RS_ERROR_FORMAT, "'%s' member 'metadata.json': %s = %" G_GINT64_FORMAT
                  " is outside [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]", path, key, *out, lo,
                  hi);
  return TRUE;
}

static gboolean
load_array (zip_t *za, const char *path, RsTrace *trace, int64_t T, int i, GError **error)
{
  const RsTraceArrayInfo *info = &rs_trace_arrays[i];
  g_autofree char *name = g_strconcat (info->name, ".npy", NULL);
  g_autofree char *where = g_strdup_printf ("'%s' member '%s'", path, name);
  zip_file_t *zf = open_member (za, path, name, TRUE, error);
  if (zf == NULL)
    return FALSE;
  Src s = { .zf = zf, .where = where };
  NpyInfo npy = { 0 };
  gboolean ok = npy_read_header (&s, &npy, error);

  NpyType want = info->elem == RS_TRACE_I32 ? NPY_I4 : info->elem == RS_TRACE_U8 ? NPY_U1 : NPY_F4;
  if (ok && npy.type != want)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: dtype %s, expected %s", where,
                   npy_types[npy.type].descr, npy_types[want].descr);
      ok = FALSE;
    }
  if (ok)
    {
      int64_t expect[3] = { T, trace->n_layer, 0 };
      int ndim = info->shape == RS_TRACE_SHAPE_T ? 1 : info->shape == RS_TRACE_SHAPE_TL ? 2 : 3;
      expect[2] = info->shape == RS_TRACE_SHAPE_TLE ? trace->n_expert : trace->k_slots;
      gboolean same = npy.ndim == ndim;
      for (int d = 0; same && d < ndim; d++)
        same = npy.shape[d] == expect[d];
      if (!same)
        {
          g_autofree char *got = shape_string (npy.shape, npy.ndim);
          g_autofree char *exp = shape_string (expect, ndim);
          g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                       "%s: shape %s does not match the metadata's %s", where, got, exp);
          ok = FALSE;
        }
    }
  if (ok)
    {
      /* n_tokens is still 0 here, so this only marks the array. */
      rs_trace_set_records (trace, i, TRUE);
      GArray *a = rs_trace_array (trace, info);
      ok = npy_stream_data (&s, &npy, sink_garray, a, error);
    }
  if (zip_fclose (zf) != 0 && ok)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: cannot read", where);
      ok = FALSE;
    }
  return ok;
}

RsTrace *
rs_trace_load_npz (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  zip_t *za = open_zip (path, error);
  if (za == NULL)
    return NULL;

  RsTrace *trace = NULL;
  JsonNode *meta = NULL;
  size_t len;
  g_autofree char *meta_text = NULL;
  g_autofree char *where = g_strdup_printf ("'%s' member 'metadata.json'", path);

  if (!zip_has (za, "metadata.json"))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "'%s' has no member 'metadata.json': not a Routescope trace", path);
      goto fail;
    }
  meta_text = read_member_text (za, path, "metadata.json", 64u << 20, &len, error);
  if (meta_text == NULL || (meta = parse_json_text (meta_text, len, where, error)) == NULL)
    goto fail;
  if (!JSON_NODE_HOLDS_OBJECT (meta))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: not a JSON object", where);
      goto fail;
    }
  JsonObject *mo = json_node_get_object (meta);
  const char *format = member_string (mo, "format");
  if (format == NULL || strcmp (format, TRACE_FORMAT_NAME) != 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "%s: format is not \"" TRACE_FORMAT_NAME "\": not a Routescope trace", where);
      goto fail;
    }
  int64_t version, L, E, K, km, T;
  if (!member_int (mo, "version", &version) || version != TRACE_FORMAT_VERSION)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED,
                   "%s: trace format version %" G_GINT64_FORMAT " is not supported (this "
                   "Routescope reads version %d)", where, version, TRACE_FORMAT_VERSION);
      goto fail;
    }
  if (!meta_int (mo, "n_layer", 1, 1 << 16, &L, path, error)
      || !meta_int (mo, "n_expert", 1, 1 << 20, &E, path, error)
      || !meta_int (mo, "k_slots", 1, 1 << 16, &K, path, error)
      || !meta_int (mo, "k_model", 0, K, &km, path, error)
      || !meta_int (mo, "n_tokens", 0, rs_trace_max_tokens ((int) L, (int) E, (int) K), &T, path,
                    error))
    goto fail;

  trace = rs_trace_new ((int) L, (int) E, (int) km, (int) K, FALSE);
  /* The trace gets its n_tokens only once every member is in: until
   * then, arrays grow from empty with the data that actually arrives. */
  for (int i = 0; i < RS_TRACE_N_ARRAYS; i++)
    {
      const RsTraceArrayInfo *info = &rs_trace_arrays[i];
      g_autofree char *name = g_strconcat (info->name, ".npy", NULL);
      if (!zip_has (za, name))
        {
          if (info->core)
            {
              g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "'%s' has no member '%s'", path, name);
              goto fail;
            }
          continue;
        }
      if (!load_array (za, path, trace, T, i, error))
        goto fail;
    }

  /* token_text.json */
  {
    g_autofree char *text_where = g_strdup_printf ("'%s' member 'token_text.json'", path);
    g_autofree char *text = read_member_text (za, path, "token_text.json", (size_t) 1 << 32, &len,
                                              error);
    if (text == NULL)
      goto fail;
    g_autoptr (JsonNode) root = parse_json_text (text, len, text_where, error);
    if (root == NULL)
      goto fail;
    if (!JSON_NODE_HOLDS_ARRAY (root) || json_array_get_length (json_node_get_array (root)) != T)
      {
        g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                     "%s: not an array of %" G_GINT64_FORMAT " strings", text_where, T);
        goto fail;
      }
    JsonArray *arr = json_node_get_array (root);
    for (guint t = 0; t < (guint) T; t++)
      {
        JsonNode *n = json_array_get_element (arr, t);
        const char *str = NULL;
        if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
          str = json_node_get_string (n);
        else if (!JSON_NODE_HOLDS_NULL (n))
          {
            g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: element %u is not a string",
                         text_where, t);
            goto fail;
          }
        g_ptr_array_add (trace->token_text, g_strdup (str));
      }
  }

  trace->n_tokens = T;

  /* The metadata without the keys the writer added. */
  for (size_t i = 0; i < G_N_ELEMENTS (reserved_keys); i++)
    if (json_object_has_member (mo, reserved_keys[i]))
      json_object_remove_member (mo, reserved_keys[i]);
  g_free (trace->metadata_json);
  trace->metadata_json = node_to_string (meta, FALSE);

  json_node_unref (meta);
  zip_discard (za);
  return trace;

fail:
  if (meta != NULL)
    json_node_unref (meta);
  rs_trace_free (trace);  /* lengths may be inconsistent here; free does not care */
  zip_discard (za);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Importing serving engines' routed experts.                          */

/* Routed-expert rows [rows, L, K] that belong to tokens offset.. */
typedef struct {
  int64_t offset;
  int64_t rows;
  int     L, K;
  GArray *ids;  /* int32 [rows * L * K], or NULL when rows == 0 */
} Segment;

static void
segment_clear (Segment *seg)
{
  g_clear_pointer (&seg->ids, g_array_unref);
  seg->rows = 0;
}

/* A 3-D [tokens, layers, k] integer array as a segment. */
static gboolean
segment_from_npy (const NpyInfo *npy, GArray *ids, const char *where, Segment *seg,
                  GError **error)
{
  if (npy->ndim != 3 || npy->shape[1] < 1 || npy->shape[2] < 1
      || npy->shape[1] > (1 << 16) || npy->shape[2] > (1 << 16))
    {
      g_autofree char *shape = shape_string (npy->shape, npy->ndim);
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "%s: routed experts must be [tokens, layers, k], not shape %s", where, shape);
      g_array_unref (ids);
      return FALSE;
    }
  seg->rows = npy->shape[0];
  seg->L = (int) npy->shape[1];
  seg->K = (int) npy->shape[2];
  seg->ids = ids;
  return TRUE;
}

/* Nested JSON lists [rows][L][K] of ints (vLLM's HTTP responses). */
static gboolean
segment_from_json (JsonNode *node, const char *where, Segment *seg, GError **error)
{
  seg->rows = 0;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (node))
    HEADER_ERROR (RS_ERROR_FORMAT, "%s: not a [tokens][layers][k] list", where);
  JsonArray *rows = json_node_get_array (node);
  guint n = json_array_get_length (rows);
  seg->ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  for (guint r = 0; r < n; r++)
    {
      JsonNode *rn = json_array_get_element (rows, r);
      JsonArray *layers = JSON_NODE_HOLDS_ARRAY (rn) ? json_node_get_array (rn) : NULL;
      guint nl = layers != NULL ? json_array_get_length (layers) : 0;
      if (r == 0)
        seg->L = (int) nl;
      if (layers == NULL || nl == 0 || nl != (guint) seg->L || nl > (1 << 16))
        HEADER_ERROR (RS_ERROR_FORMAT, "%s: row %u is not a list of %d layers", where, r, seg->L);
      for (guint l = 0; l < nl; l++)
        {
          JsonNode *ln = json_array_get_element (layers, l);
          JsonArray *ks = JSON_NODE_HOLDS_ARRAY (ln) ? json_node_get_array (ln) : NULL;
          guint nk = ks != NULL ? json_array_get_length (ks) : 0;
          if (r == 0 && l == 0)
            seg->K = (int) nk;
          if (ks == NULL || nk == 0 || nk != (guint) seg->K || nk > (1 << 16))
            HEADER_ERROR (RS_ERROR_FORMAT, "%s: row %u, layer %u is not a list of %d ids", where,
                          r, l, seg->K);
          for (guint j = 0; j < nk; j++)
            {
              int64_t v;
              if (!node_int (json_array_get_element (ks, j), &v) || v < G_MININT32 || v > G_MAXINT32)
                HEADER_ERROR (RS_ERROR_FORMAT, "%s: row %u, layer %u: not an integer id", where,
                              r, l);
              int32_t v32 = (int32_t) v;
              g_array_append_val (seg->ids, v32);
            }
        }
    }
  seg->rows = n;
  return TRUE;
}

static GArray *
ids_from_json (JsonArray *arr, const char *where, GError **error)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  for (guint i = 0; i < json_array_get_length (arr); i++)
    {
      int64_t v;
      if (!node_int (json_array_get_element (arr, i), &v) || v < G_MININT32 || v > G_MAXINT32)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "%s: token %u is not an integer id",
                       where, i);
          g_array_unref (ids);
          return NULL;
        }
      int32_t v32 = (int32_t) v;
      g_array_append_val (ids, v32);
    }
  return ids;
}

/* The trace of @T tokens (the first @P of them the prompt; P < 0: not
 * known) with @token_ids (int32 [T], may be NULL), @texts ([T], may be
 * NULL) and the routed experts of @segs. @meta (borrowed) gets "source"
 * and "file" and becomes the trace's metadata. */
static RsTrace *
build_imported (const char *path, const char *source, int n_expert, int64_t T, int64_t P,
                GArray *token_ids, GPtrArray *texts, Segment *segs, int n_segs, JsonObject *meta,
                GError **error)
{
  int L = 0, K = 0;
  for (int s = 0; s < n_segs; s++)
    {
      if (segs[s].rows == 0)
        continue;
      if (L == 0)
        {
          L = segs[s].L;
          K = segs[s].K;
        }
      else if (segs[s].L != L || segs[s].K != K)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                       "'%s': routed experts of %d layers, k = %d and of %d layers, k = %d disagree",
                       path, L, K, segs[s].L, segs[s].K);
          return NULL;
        }
      if (segs[s].offset < 0 || segs[s].rows > T - segs[s].offset)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                       "'%s': %" G_GINT64_FORMAT " rows of routed experts do not fit tokens %"
                       G_GINT64_FORMAT "..%" G_GINT64_FORMAT, path, segs[s].rows, segs[s].offset,
                       T - 1);
          return NULL;
        }
    }
  if (L == 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT, "'%s' holds no routed experts", path);
      return NULL;
    }

  /* -1 is the engines' own "no expert" (vLLM: prefix-cached positions). */
  int32_t max_id = -1;
  for (int s = 0; s < n_segs; s++)
    for (int64_t i = 0; i < segs[s].rows * L * K; i++)
      {
        int32_t v = g_array_index (segs[s].ids, int32_t, i);
        int64_t t = segs[s].offset + i / ((int64_t) L * K);
        int l = (int) (i / K % L);
        if (v < -1 || (n_expert > 0 && v >= n_expert))
          {
            g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                         n_expert > 0 ? "'%s': expert id %d at token %" G_GINT64_FORMAT
                                        ", layer %d is out of range for %d experts"
                                      : "'%s': expert id %d at token %" G_GINT64_FORMAT
                                        ", layer %d is negative",
                         path, v, t, l, n_expert);
            return NULL;
          }
        max_id = MAX (max_id, v);
      }
  int E = n_expert > 0 ? n_expert : max_id + 1;
  if (E <= 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "'%s': no expert ids (all are -1); pass the number of experts", path);
      return NULL;
    }
  if (T > rs_trace_max_tokens (L, E, K))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_RESOURCE, "'%s': too many tokens (%" G_GINT64_FORMAT
                   ")", path, T);
      return NULL;
    }

  RsTrace *trace = rs_trace_new (L, E, K, K, FALSE);
  const int32_t *ids = token_ids != NULL ? (const int32_t *) (void *) token_ids->data : NULL;
  int64_t np = P > 0 ? P : 0;
  rs_trace_append_tokens (trace, ids, np, TRUE);
  rs_trace_append_tokens (trace, ids != NULL ? ids + np : NULL, T - np, FALSE);
  if (texts != NULL)
    for (int64_t t = 0; t < T; t++)
      {
        g_free (g_ptr_array_index (trace->token_text, t));
        g_ptr_array_index (trace->token_text, t) = g_strdup (g_ptr_array_index (texts, t));
      }
  int32_t *topk = (int32_t *) (void *) trace->topk_ids->data;
  for (int s = 0; s < n_segs; s++)
    if (segs[s].rows > 0)
      memcpy (topk + segs[s].offset * L * K, segs[s].ids->data,
              sizeof (int32_t) * (size_t) (segs[s].rows * L * K));

  g_autofree char *base = g_path_get_basename (path);
  json_object_set_string_member (meta, "source", source);
  json_object_set_string_member (meta, "file", base);
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (node, meta);
  g_free (trace->metadata_json);
  trace->metadata_json = node_to_string (node, FALSE);
  return trace;
}

/* An int array member of a vLLM NPZ (NULL with no error if absent). */
static GArray *
npz_ints (zip_t *za, const char *path, const char *name, NpyInfo *npy, GError **error)
{
  if (!zip_has (za, name))
    return NULL;
  zip_file_t *zf = open_member (za, path, name, TRUE, error);
  if (zf == NULL)
    return NULL;
  g_autofree char *where = g_strdup_printf ("'%s' member '%s'", path, name);
  Src s = { .zf = zf, .where = where };
  GArray *ids = npy_read_ints (&s, npy, error);
  zip_fclose (zf);
  return ids;
}

RsTrace *
rs_trace_import_vllm (const char *path, int n_expert, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  if (n_expert < 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "Invalid number of experts %d", n_expert);
      return NULL;
    }
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr (GError) err = NULL;
  if (!g_file_get_contents (path, &data, &len, &err))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "Cannot read '%s': %s", path, err->message);
      return NULL;
    }
  g_autofree char *where = g_strdup_printf ("'%s'", path);
  Segment segs[2] = { { 0 }, { 0 } };  /* prompt, generated */
  g_autoptr (GArray) prompt_ids = NULL;
  g_autoptr (GArray) gen_ids = NULL;
  g_autoptr (GArray) ids = NULL;  /* int32 [T] */
  gboolean split = TRUE;  /* prompt and generated tokens told apart */
  RsTrace *trace = NULL;
  JsonObject *meta = json_object_new ();

  if (len >= 6 && memcmp (data, "\x93NUMPY", 6) == 0)
    {
      /* A bare array: numpy.save("x.npy", output.routed_experts). */
      Src s = { .mem = (const uint8_t *) data, .mem_len = len, .where = where };
      NpyInfo npy = { 0 };
      GArray *ids = npy_read_ints (&s, &npy, error);
      if (ids == NULL || !segment_from_npy (&npy, ids, where, &segs[1], error))
        goto out;
      split = FALSE;
    }
  else if (len >= 4 && (memcmp (data, "PK\x03\x04", 4) == 0 || memcmp (data, "PK\x05\x06", 4) == 0))
    {
      /* numpy.savez with vLLM's field names; or one unnamed array. */
      zip_t *za = open_zip (path, error);
      if (za == NULL)
        goto out;
      static const char *const names[2] = { "prompt_routed_experts.npy", "routed_experts.npy" };
      gboolean any = zip_has (za, names[0]) || zip_has (za, names[1]);
      if (!any)
        {
          gboolean bare = zip_has (za, "arr_0.npy") && zip_get_num_entries (za, 0) == 1;
          NpyInfo npy = { 0 };
          GArray *bare_ids = bare ? npz_ints (za, path, "arr_0.npy", &npy, error) : NULL;
          g_autofree char *w = g_strdup_printf ("'%s' member 'arr_0.npy'", path);
          if (!bare)
            g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                         "'%s' has neither 'prompt_routed_experts.npy' nor 'routed_experts.npy'",
                         path);
          gboolean ok = bare_ids != NULL && segment_from_npy (&npy, bare_ids, w, &segs[1], error);
          split = FALSE;
          zip_discard (za);
          if (!ok)
            goto out;
        }
      else
        {
          for (int s = 0; s < 2; s++)
            {
              NpyInfo npy = { 0 };
              GError *e = NULL;
              GArray *ids = npz_ints (za, path, names[s], &npy, &e);
              g_autofree char *w = g_strdup_printf ("'%s' member '%s'", path, names[s]);
              if (e != NULL || (ids != NULL && !segment_from_npy (&npy, ids, w, &segs[s], &e)))
                {
                  g_propagate_error (error, e);
                  zip_discard (za);
                  goto out;
                }
            }
          static const char *const id_names[2] = { "prompt_token_ids.npy", "token_ids.npy" };
          GArray **id_arrays[2] = { &prompt_ids, &gen_ids };
          for (int s = 0; s < 2; s++)
            {
              NpyInfo npy = { 0 };
              GError *e = NULL;
              *id_arrays[s] = npz_ints (za, path, id_names[s], &npy, &e);
              if (e == NULL && *id_arrays[s] != NULL && npy.ndim != 1)
                g_set_error (&e, RS_ERROR, RS_ERROR_FORMAT, "'%s' member '%s': not 1-D", path,
                             id_names[s]);
              if (e != NULL)
                {
                  g_propagate_error (error, e);
                  zip_discard (za);
                  goto out;
                }
            }
          zip_discard (za);
        }
    }
  else
    {
      /* A /v1/completions or /v1/chat/completions response. */
      g_autoptr (JsonNode) root = parse_json_text (data, len, where, error);
      if (root == NULL)
        goto out;
      if (!JSON_NODE_HOLDS_OBJECT (root))
        {
          g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                       "'%s' is neither .npy, .npz nor a JSON response object", path);
          goto out;
        }
      JsonObject *ro = json_node_get_object (root);
      JsonArray *choices = member_array (ro, "choices");
      JsonObject *choice = ro;
      if (choices != NULL && json_array_get_length (choices) > 0)
        {
          JsonNode *c0 = json_array_get_element (choices, 0);
          choice = JSON_NODE_HOLDS_OBJECT (c0) ? json_node_get_object (c0) : NULL;
          json_object_set_int_member (meta, "choice", 0);
          json_object_set_int_member (meta, "n_choices", json_array_get_length (choices));
        }
      g_autofree char *wp = g_strdup_printf ("'%s' prompt_routed_experts", path);
      g_autofree char *wg = g_strdup_printf ("'%s' routed_experts", path);
      if (!segment_from_json (json_object_has_member (ro, "prompt_routed_experts")
                                ? json_object_get_member (ro, "prompt_routed_experts") : NULL,
                              wp, &segs[0], error)
          || !segment_from_json (choice != NULL && json_object_has_member (choice, "routed_experts")
                                   ? json_object_get_member (choice, "routed_experts") : NULL,
                                 wg, &segs[1], error))
        goto out;
      JsonArray *pa = member_array (ro, "prompt_token_ids");
      JsonArray *ga = member_array (choice, "token_ids");
      if ((pa != NULL && (prompt_ids = ids_from_json (pa, wp, error)) == NULL)
          || (ga != NULL && (gen_ids = ids_from_json (ga, wg, error)) == NULL))
        goto out;
      if (segs[0].rows == 0 && segs[1].rows == 0)
        {
          g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                       "'%s' has no prompt_routed_experts or choices[0].routed_experts: was the "
                       "server started with --enable-return-routed-experts?", path);
          goto out;
        }
    }

  /* Token counts: the ids when known, else the routed rows. vLLM may
   * return fewer generated rows than tokens; never more. */
  int64_t P = prompt_ids != NULL ? (int64_t) prompt_ids->len : segs[0].rows;
  int64_t C = gen_ids != NULL ? (int64_t) gen_ids->len : segs[1].rows;
  if (segs[0].rows > P || segs[1].rows > C)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "'%s': more routed-expert rows than tokens (prompt %" G_GINT64_FORMAT " > %"
                   G_GINT64_FORMAT " or generated %" G_GINT64_FORMAT " > %" G_GINT64_FORMAT ")",
                   path, segs[0].rows, P, segs[1].rows, C);
      goto out;
    }
  segs[0].offset = 0;
  segs[1].offset = P;
  if (prompt_ids != NULL || gen_ids != NULL)
    {
      ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
      for (int64_t t = 0; t < P + C; t++)
        {
          int32_t v = -1;
          if (t < P && prompt_ids != NULL)
            v = g_array_index (prompt_ids, int32_t, t);
          else if (t >= P && gen_ids != NULL)
            v = g_array_index (gen_ids, int32_t, t - P);
          g_array_append_val (ids, v);
        }
    }
  if (split)
    {
      json_object_set_int_member (meta, "prompt_tokens", P);
      json_object_set_int_member (meta, "completion_tokens", C);
    }
  trace = build_imported (path, "vllm", n_expert, P + C, split ? P : -1, ids, NULL, segs, 2,
                          meta, error);

out:
  json_object_unref (meta);
  segment_clear (&segs[0]);
  segment_clear (&segs[1]);
  return trace;
}

static gboolean
is_base64 (const char *s)
{
  size_t n = 0;
  for (const char *p = s; *p != 0; p++)
    {
      if (g_ascii_isalnum (*p) || *p == '+' || *p == '/' || *p == '=')
        n++;
      else if (!g_ascii_isspace (*p))
        return FALSE;
    }
  return n % 4 == 0;
}

RsTrace *
rs_trace_import_sglang (const char *path, int n_layer, int n_expert, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  if (n_layer <= 0 || n_layer > (1 << 16))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID,
                   "Importing '%s' needs the model's number of layers (got %d): SGLang's routed "
                   "experts are a flat array", path, n_layer);
      return NULL;
    }
  if (n_expert < 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "Invalid number of experts %d", n_expert);
      return NULL;
    }
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr (GError) err = NULL;
  if (!g_file_get_contents (path, &data, &len, &err))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_IO, "Cannot read '%s': %s", path, err->message);
      return NULL;
    }
  g_autofree char *where = g_strdup_printf ("'%s'", path);
  g_autoptr (JsonNode) root = parse_json_text (data, len, where, error);
  if (root == NULL)
    return NULL;

  /* /generate answers a batch with a list: take its first response. */
  JsonNode *rn = root;
  JsonObject *meta_out = json_object_new ();
  if (JSON_NODE_HOLDS_ARRAY (root) && json_array_get_length (json_node_get_array (root)) > 0)
    {
      rn = json_array_get_element (json_node_get_array (root), 0);
      json_object_set_int_member (meta_out, "batch_index", 0);
    }
  JsonObject *ro = JSON_NODE_HOLDS_OBJECT (rn) ? json_node_get_object (rn) : NULL;
  JsonArray *choices = member_array (ro, "choices");
  JsonObject *choice = NULL;
  if (choices != NULL && json_array_get_length (choices) > 0
      && JSON_NODE_HOLDS_OBJECT (json_array_get_element (choices, 0)))
    choice = json_node_get_object (json_array_get_element (choices, 0));
  JsonObject *mi = member_object (ro, "meta_info");
  if (mi == NULL)
    mi = member_object (choice, "meta_info");

  /* Where the responses put it: /generate in meta_info, the OpenAI-style
   * endpoints in the choice's sgl_ext. */
  JsonObject *holders[] = {
    mi, member_object (choice, "sgl_ext"), member_object (choice, "sglext"),
    member_object (ro, "sgl_ext"), member_object (ro, "sglext"),
  };
  JsonObject *holder = NULL;
  for (size_t i = 0; i < G_N_ELEMENTS (holders) && holder == NULL; i++)
    if (holders[i] != NULL && json_object_has_member (holders[i], "routed_experts")
        && !JSON_NODE_HOLDS_NULL (json_object_get_member (holders[i], "routed_experts")))
      holder = holders[i];
  RsTrace *trace = NULL;
  Segment seg = { 0 };
  g_autoptr (GArray) ids = NULL;
  g_autoptr (GPtrArray) texts = NULL;
  g_autofree guchar *raw = NULL;

  if (holder == NULL)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "'%s' has no meta_info.routed_experts (nor choices[0].sgl_ext.routed_experts): "
                   "send the request with return_routed_experts to a server started with "
                   "--enable-return-routed-experts", path);
      goto out;
    }
  const char *b64 = member_string (holder, "routed_experts");
  if (b64 == NULL || !is_base64 (b64))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_UNSUPPORTED,
                   "'%s': routed_experts is not a base64 string", path);
      goto out;
    }

  /* Token counts; the routed rows cover [start, P + C - 1): the last
   * token was never run through the model. */
  JsonObject *usage = member_object (ro, "usage");
  int64_t P, C, start = 0;
  if (!(member_int (mi, "prompt_tokens", &P) && member_int (mi, "completion_tokens", &C))
      && !(member_int (usage, "prompt_tokens", &P) && member_int (usage, "completion_tokens", &C)))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "'%s' has no prompt_tokens and completion_tokens (meta_info or usage): the "
                   "routed experts cannot be split into tokens", path);
      goto out;
    }
  if (!member_int (ro, "routed_experts_start_len", &start))
    member_int (mi, "routed_experts_start_len", &start);
  if (P < 0 || C < 0 || P > G_MAXINT32 || C > G_MAXINT32 || start < 0 || P + C - 1 - start <= 0)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "'%s': no routed tokens for prompt_tokens %" G_GINT64_FORMAT ", completion_tokens %"
                   G_GINT64_FORMAT ", routed_experts_start_len %" G_GINT64_FORMAT, path, P, C, start);
      goto out;
    }
  int64_t rows = P + C - 1 - start;
  gsize nbytes = 0;
  raw = g_base64_decode (b64, &nbytes);
  gsize n = nbytes / 4;
  if (nbytes % 4 != 0 || n == 0 || n % (gsize) (rows * n_layer) != 0
      || n / (gsize) (rows * n_layer) > (1 << 16))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_FORMAT,
                   "'%s': routed_experts holds %" G_GSIZE_FORMAT " bytes, not int32 [%"
                   G_GINT64_FORMAT " rows, %d layers, k] (rows = prompt_tokens + completion_tokens "
                   "- 1 - routed_experts_start_len; is the number of layers right?)", path, nbytes,
                   rows, n_layer);
      goto out;
    }
  int K = (int) (n / (gsize) (rows * n_layer));
  seg.offset = start;
  seg.rows = rows;
  seg.L = n_layer;
  seg.K = K;
  seg.ids = g_array_sized_new (FALSE, FALSE, sizeof (int32_t), (guint) n);
  for (gsize i = 0; i < n; i++)
    {
      uint32_t u = (uint32_t) raw[4 * i] | (uint32_t) raw[4 * i + 1] << 8
                   | (uint32_t) raw[4 * i + 2] << 16 | (uint32_t) raw[4 * i + 3] << 24;
      int32_t v = (int32_t) u;
      g_array_append_val (seg.ids, v);
    }
  /* SGLang records every layer and leaves those without experts at 0;
   * top-k never picks an expert twice, so k >= 2 zeros mean "none". */
  for (gsize i = 0; K >= 2 && i < n; i += (gsize) K)
    {
      int32_t *row = &g_array_index (seg.ids, int32_t, i);
      gboolean zeros = TRUE;
      for (int j = 0; j < K && zeros; j++)
        zeros = row[j] == 0;
      for (int j = 0; j < K && zeros; j++)
        row[j] = -1;
    }

  /* Token ids and texts where the response has them: the prompt's from
   * input_token_logprobs ([logprob, id, text]), the output's from
   * output_ids or output_token_logprobs. */
  int64_t T = P + C;
  ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  texts = g_ptr_array_new_with_free_func (g_free);
  for (int64_t t = 0; t < T; t++)
    {
      int32_t none = -1;
      g_array_append_val (ids, none);
      g_ptr_array_add (texts, NULL);
    }
  JsonArray *logprobs[2] = { member_array (mi, "input_token_logprobs"),
                             member_array (mi, "output_token_logprobs") };
  int64_t first[2] = { 0, P }, count[2] = { P, C };
  for (int s = 0; s < 2; s++)
    if (logprobs[s] != NULL && json_array_get_length (logprobs[s]) == (guint) count[s])
      for (int64_t t = 0; t < count[s]; t++)
        {
          JsonNode *en = json_array_get_element (logprobs[s], (guint) t);
          JsonArray *e = JSON_NODE_HOLDS_ARRAY (en) ? json_node_get_array (en) : NULL;
          int64_t v;
          if (e != NULL && json_array_get_length (e) >= 2
              && node_int (json_array_get_element (e, 1), &v) && v >= 0 && v <= G_MAXINT32)
            g_array_index (ids, int32_t, first[s] + t) = (int32_t) v;
          JsonNode *tn = e != NULL && json_array_get_length (e) >= 3 ? json_array_get_element (e, 2) : NULL;
          if (tn != NULL && JSON_NODE_HOLDS_VALUE (tn) && json_node_get_value_type (tn) == G_TYPE_STRING)
            {
              g_free (g_ptr_array_index (texts, first[s] + t));
              g_ptr_array_index (texts, first[s] + t) = g_strdup (json_node_get_string (tn));
            }
        }
  JsonArray *out_ids = member_array (ro, "output_ids");
  if (out_ids != NULL && json_array_get_length (out_ids) == (guint) C)
    for (int64_t t = 0; t < C; t++)
      {
        int64_t v;
        if (node_int (json_array_get_element (out_ids, (guint) t), &v) && v >= 0 && v <= G_MAXINT32)
          g_array_index (ids, int32_t, P + t) = (int32_t) v;
      }

  json_object_set_int_member (meta_out, "prompt_tokens", P);
  json_object_set_int_member (meta_out, "completion_tokens", C);
  json_object_set_int_member (meta_out, "routed_experts_start_len", start);
  trace = build_imported (path, "sglang", n_expert, T, P, ids, texts, &seg, 1,
                          meta_out, error);

out:
  json_object_unref (meta_out);
  segment_clear (&seg);
  return trace;
}

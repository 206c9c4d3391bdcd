/* rs-intervention.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "rs-intervention.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rs-error.h"

static const char *const kind_names[] = {
  [RS_INTERVENE_DISABLE] = "disable",
  [RS_INTERVENE_FORCE] = "force",
  [RS_INTERVENE_BIAS] = "bias",
  [RS_INTERVENE_SOFT_BIAS] = "soft-bias",
  [RS_INTERVENE_TOP_K] = "top-k",
  [RS_INTERVENE_TOP_P] = "top-p",
};

const char *
rs_intervention_kind_name (RsInterventionKind kind)
{
  return (unsigned) kind < G_N_ELEMENTS (kind_names) ? kind_names[kind] : "unknown";
}

static gboolean
parse_int (const char *s, int *out)
{
  char *end;
  errno = 0;
  long v = strtol (s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 0 || v > G_MAXINT)
    return FALSE;
  *out = (int) v;
  return TRUE;
}

static gboolean
parse_float (const char *s, float *out)
{
  char *end;
  errno = 0;
  double v = g_ascii_strtod (s, &end);
  if (errno != 0 || end == s || *end != '\0' || !isfinite (v))
    return FALSE;
  *out = (float) v;
  return TRUE;
}

static gboolean
parse_layers (const char *s, RsIntervention *iv)
{
  if (strcmp (s, "*") == 0)
    {
      iv->layer_first = iv->layer_last = -1;
      return TRUE;
    }
  const char *dash = strchr (s, '-');
  if (dash == NULL)
    {
      if (!parse_int (s, &iv->layer_first))
        return FALSE;
      iv->layer_last = iv->layer_first;
      return TRUE;
    }
  g_autofree char *a = g_strndup (s, dash - s);
  return parse_int (a, &iv->layer_first) && parse_int (dash + 1, &iv->layer_last) &&
         iv->layer_first <= iv->layer_last;
}

gboolean
rs_intervention_parse (RsInterventionKind kind, const char *text, int64_t from_token,
                       RsIntervention *out, GError **error)
{
  RsIntervention iv = { .kind = kind, .from_token = MAX (from_token, 0) };
  g_auto (GStrv) parts = g_strsplit (text, ":", -1);
  guint n = g_strv_length (parts);
  gboolean has_experts = kind <= RS_INTERVENE_SOFT_BIAS;
  gboolean has_value = kind != RS_INTERVENE_DISABLE && kind != RS_INTERVENE_FORCE;
  guint want = 1 + has_experts + has_value;
  const char *form = has_experts ? (has_value ? "LAYERS:EXPERTS:VALUE" : "LAYERS:EXPERTS")
                                 : "LAYERS:VALUE";

  if (n != want || !parse_layers (parts[0], &iv))
    goto syntax;
  if (has_experts)
    {
      g_auto (GStrv) list = g_strsplit (parts[1], ",", -1);
      for (guint i = 0; list[i] != NULL; i++)
        {
          if (iv.n_experts >= RS_MAX_EXPERTS_USED || !parse_int (list[i], &iv.experts[iv.n_experts]))
            goto syntax;
          iv.n_experts++;
        }
      if (iv.n_experts == 0)
        goto syntax;
    }
  if (has_value && !parse_float (parts[n - 1], &iv.value))
    goto syntax;
  if (kind == RS_INTERVENE_TOP_K && (iv.value < 1 || iv.value > RS_MAX_EXPERTS_USED ||
                                     iv.value != floorf (iv.value)))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "top-k '%s': k must be a whole number "
                   "from 1 to %d", text, RS_MAX_EXPERTS_USED);
      return FALSE;
    }
  if (kind == RS_INTERVENE_TOP_P && !(iv.value > 0.0f && iv.value <= 1.0f))
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "top-p '%s': p must be in (0, 1]", text);
      return FALSE;
    }
  *out = iv;
  return TRUE;

syntax:
  g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "%s '%s': expected %s, where LAYERS is a "
               "layer, a range A-B or *%s", rs_intervention_kind_name (kind), text, form,
               has_experts ? " and EXPERTS an expert or a comma list" : "");
  return FALSE;
}

gboolean
rs_intervention_validate (const RsIntervention *iv, const RsHparams *hp, GError **error)
{
  int last_layer = (int) hp->n_layer - 1;
  if (iv->layer_first > last_layer || iv->layer_last > last_layer)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "%s: layer %d does not exist (the model "
                   "has layers 0 to %d)", rs_intervention_kind_name (iv->kind),
                   MAX (iv->layer_first, iv->layer_last), last_layer);
      return FALSE;
    }
  for (int j = 0; j < iv->n_experts; j++)
    if (iv->experts[j] >= (int) hp->n_expert)
      {
        g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "%s: expert %d does not exist (the "
                     "model has experts 0 to %u)", rs_intervention_kind_name (iv->kind),
                     iv->experts[j], hp->n_expert - 1);
        return FALSE;
      }
  if (iv->kind == RS_INTERVENE_TOP_K && iv->value > hp->n_expert)
    {
      g_set_error (error, RS_ERROR, RS_ERROR_INVALID, "top-k %g: the model has only %u experts",
                   iv->value, hp->n_expert);
      return FALSE;
    }
  return TRUE;
}

char *
rs_intervention_describe (const RsIntervention *iv)
{
  GString *s = g_string_new (rs_intervention_kind_name (iv->kind));
  if (iv->layer_first < 0)
    g_string_append (s, " *");
  else if (iv->layer_first == iv->layer_last)
    g_string_append_printf (s, " %d", iv->layer_first);
  else
    g_string_append_printf (s, " %d-%d", iv->layer_first, iv->layer_last);
  for (int j = 0; j < iv->n_experts; j++)
    g_string_append_printf (s, "%c%d", j == 0 ? ':' : ',', iv->experts[j]);
  if (iv->kind != RS_INTERVENE_DISABLE && iv->kind != RS_INTERVENE_FORCE)
    g_string_append_printf (s, ":%g", iv->value);
  g_string_append_printf (s, " from token %" G_GINT64_FORMAT, iv->from_token);
  return g_string_free (s, FALSE);
}

struct _RsLayerControls {
  int              n_layer, n_expert;
  gboolean        *active;   /* [L] */
  RsRouterControl *ctl;      /* [L] */
  float           *bias;     /* [L, E] */
  float           *soft;     /* [L, E] */
  uint8_t         *mode;     /* [L, E] */
};

RsLayerControls *
rs_layer_controls_new (const RsHparams *hp)
{
  RsLayerControls *c = g_new0 (RsLayerControls, 1);
  c->n_layer = hp->n_layer;
  c->n_expert = hp->n_expert;
  c->active = g_new0 (gboolean, c->n_layer);
  c->ctl = g_new0 (RsRouterControl, c->n_layer);
  c->bias = g_new0 (float, (size_t) c->n_layer * c->n_expert);
  c->soft = g_new0 (float, (size_t) c->n_layer * c->n_expert);
  c->mode = g_new0 (uint8_t, (size_t) c->n_layer * c->n_expert);
  return c;
}

void
rs_layer_controls_free (RsLayerControls *c)
{
  if (c == NULL)
    return;
  g_free (c->active);
  g_free (c->ctl);
  g_free (c->bias);
  g_free (c->soft);
  g_free (c->mode);
  g_free (c);
}

void
rs_layer_controls_build (RsLayerControls *c, const RsIntervention *ivs, int n, int64_t pos)
{
  const int E = c->n_expert;
  memset (c->active, 0, c->n_layer * sizeof (gboolean));
  memset (c->ctl, 0, c->n_layer * sizeof (RsRouterControl));
  memset (c->bias, 0, (size_t) c->n_layer * E * sizeof (float));
  memset (c->soft, 0, (size_t) c->n_layer * E * sizeof (float));
  memset (c->mode, 0, (size_t) c->n_layer * E);

  for (int i = 0; i < n; i++)
    {
      const RsIntervention *iv = &ivs[i];
      if (pos < iv->from_token)
        continue;
      int first = iv->layer_first < 0 ? 0 : iv->layer_first;
      int last = iv->layer_last < 0 ? c->n_layer - 1 : MIN (iv->layer_last, c->n_layer - 1);
      for (int l = first; l <= last; l++)
        {
          RsRouterControl *ctl = &c->ctl[l];
          c->active[l] = TRUE;
          for (int j = 0; j < iv->n_experts; j++)
            {
              int e = iv->experts[j];
              if (e < 0 || e >= E)
                continue;
              switch (iv->kind)
                {
                case RS_INTERVENE_DISABLE:
                  c->mode[l * E + e] = RS_EXPERT_DISABLED;
                  ctl->mode = c->mode + l * E;
                  break;
                case RS_INTERVENE_FORCE:
                  c->mode[l * E + e] = RS_EXPERT_FORCED;
                  ctl->mode = c->mode + l * E;
                  break;
                case RS_INTERVENE_BIAS:
                  c->bias[l * E + e] += iv->value;
                  ctl->logit_bias = c->bias + l * E;
                  break;
                case RS_INTERVENE_SOFT_BIAS:
                  c->soft[l * E + e] += iv->value;
                  ctl->soft_bias = c->soft + l * E;
                  break;
                default:
                  break;
                }
            }
          if (iv->kind == RS_INTERVENE_TOP_K)
            ctl->top_k = (int) iv->value;
          else if (iv->kind == RS_INTERVENE_TOP_P)
            ctl->top_p = iv->value;
        }
    }
}

const RsRouterControl *
rs_layer_controls_get (const RsLayerControls *c, int layer)
{
  return c->active[layer] ? &c->ctl[layer] : NULL;
}

int
rs_interventions_max_selected (const RsIntervention *ivs, int n, const RsHparams *hp)
{
  int k = hp->n_expert_used, forced = 0;
  for (int i = 0; i < n; i++)
    {
      if (ivs[i].kind == RS_INTERVENE_TOP_K)
        k = MAX (k, (int) ivs[i].value);
      else if (ivs[i].kind == RS_INTERVENE_TOP_P)
        k = MAX (k, (int) MIN (hp->n_expert, RS_MAX_EXPERTS_USED));
      else if (ivs[i].kind == RS_INTERVENE_FORCE)
        forced += ivs[i].n_experts;
    }
  return MIN (MAX (k, forced), RS_MAX_EXPERTS_USED);
}

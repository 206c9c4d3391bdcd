/* rs-intervention.h: steering the routers.
 *
 * An intervention acts on the router stage of a set of layers, from a
 * token position on:
 *   disable E      expert E is never selected
 *   force E        expert E is always selected
 *   bias E:D       D is added to E's router logit (before scoring)
 *   soft-bias E:S  S * (max z - min z) of that token's logits is added to
 *                  E's logit, so the push scales with the router's own
 *                  spread (as SteerMoE/EasySteer steer)
 *   top-k K        K experts per token instead of the model's k
 *   top-p P        experts by descending probability while the cumulative
 *                  probability stays <= P, plus the one that crosses it
 *                  (Huang et al.; methods.md section 5)
 * The selected experts' weights are then computed by the architecture's
 * own rule (renormalised or not, scaled), see rs-router.h.
 *
 * Text form (the CLI flags): LAYERS:EXPERTS[:VALUE] where LAYERS is a
 * layer, a range A-B or *, and EXPERTS an expert or a comma list;
 * top-k and top-p take LAYERS:VALUE.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "rs-model.h"
#include "rs-router.h"

G_BEGIN_DECLS

typedef enum {
  RS_INTERVENE_DISABLE,
  RS_INTERVENE_FORCE,
  RS_INTERVENE_BIAS,
  RS_INTERVENE_SOFT_BIAS,
  RS_INTERVENE_TOP_K,
  RS_INTERVENE_TOP_P,
} RsInterventionKind;

typedef struct {
  RsInterventionKind kind;
  int      layer_first;  /* inclusive; -1 with layer_last -1 = every layer */
  int      layer_last;
  int      n_experts;
  int      experts[RS_MAX_EXPERTS_USED]; /* disable/force/bias/soft-bias */
  float    value;        /* bias delta, soft-bias strength, top-k k, top-p p */
  int64_t  from_token;   /* applies to positions >= from_token (0: the whole
                            sequence, prompt included) */
} RsIntervention;

/* The CLI name of a kind ("disable", "soft-bias", "top-p"...). */
const char *rs_intervention_kind_name (RsInterventionKind kind);

/* Parses "LAYERS:EXPERTS[:VALUE]" for @kind. Syntax errors name the text. */
gboolean rs_intervention_parse (RsInterventionKind kind, const char *text, int64_t from_token,
                                RsIntervention *out, GError **error);

/* Checks layers and experts against the model: RS_ERROR_INVALID naming
 * the layer or expert that does not exist (or a layer without experts). */
gboolean rs_intervention_validate (const RsIntervention *iv, const RsHparams *hp,
                                   GError **error);

/* "disable 3:5,7 from token 0" */
char *rs_intervention_describe (const RsIntervention *iv);

/* The per-layer router controls a list of interventions gives at token
 * position @pos. Owns its arrays; reused between calls without allocation. */
typedef struct _RsLayerControls RsLayerControls;

RsLayerControls *rs_layer_controls_new  (const RsHparams *hp);
void             rs_layer_controls_free (RsLayerControls *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsLayerControls, rs_layer_controls_free)

/* Fills the controls for position @pos from @ivs [n]. Returns the control
 * of each layer through rs_layer_controls_get (NULL: untouched). */
void rs_layer_controls_build (RsLayerControls *c, const RsIntervention *ivs, int n, int64_t pos);
const RsRouterControl *rs_layer_controls_get (const RsLayerControls *c, int layer);

/* The largest number of experts any layer may select under @ivs (to size
 * trace slots). */
int rs_interventions_max_selected (const RsIntervention *ivs, int n, const RsHparams *hp);

G_END_DECLS

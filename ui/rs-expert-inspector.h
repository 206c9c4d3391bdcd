/* rs-expert-inspector.h: one expert (layer, expert) in detail, and the
 * interventions.
 *
 * Shows the expert's load, mean probability and weight, the tokens
 * routed to it and its largest output, and its gate weight per token;
 * disables, forces or biases it (window actions win.disable-expert,
 * win.force-expert, win.bias-expert: from the next token on); lists the
 * active interventions, whose values can be edited and which can be
 * removed (win.set-intervention-value, win.remove-intervention).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gtk/gtk.h>

#include "rs-session-worker.h"

G_BEGIN_DECLS

#define RS_TYPE_EXPERT_INSPECTOR (rs_expert_inspector_get_type ())
G_DECLARE_FINAL_TYPE (RsExpertInspector, rs_expert_inspector, RS, EXPERT_INSPECTOR, GtkWidget)

GtkWidget *rs_expert_inspector_new (void);
void       rs_expert_inspector_set_model (RsExpertInspector *self, const RsModelInfo *info);
void       rs_expert_inspector_trace_changed (RsExpertInspector *self, const RsTrace *trace, gint64 t0);
void       rs_expert_inspector_set_interventions (RsExpertInspector *self, const RsIntervention *ivs, int n);
/* -1, -1: none. */
void       rs_expert_inspector_set_expert (RsExpertInspector *self, int layer, int expert);
gboolean   rs_expert_inspector_get_expert (RsExpertInspector *self, int *layer, int *expert);

G_END_DECLS

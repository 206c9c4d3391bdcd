/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rs-analysis-plot.h: the charts of the routing analyses (rs-analysis.h),
 * built once for both the GUI's views and the CLI's --figure, so that a
 * figure exported from either is the same drawing: the same data, titles,
 * axis labels, colour maps and missing-value handling, drawn by rs-plot.
 *
 * Each function replaces what @plot shows with the analysis' chart (a
 * heatmap or lines; the other layer kind is cleared). A NULL result
 * clears the chart. Titles are translatable (the "routescope" domain).
 */
#pragma once

#include "rs-analysis.h"
#include "rs-plot.h"

G_BEGIN_DECLS

/* Chart sizes the GUI exports at by default (settings export-width,
 * export-height, export-scale); the CLI uses the same. */
#define RS_FIGURE_WIDTH  1200.0
#define RS_FIGURE_HEIGHT 750.0
#define RS_FIGURE_SCALE  2.0

typedef enum {
  RS_LOAD_CHART_COUNT,        /* tokens routed */
  RS_LOAD_CHART_MEAN_PROB,    /* mean router probability */
  RS_LOAD_CHART_MEAN_WEIGHT,  /* mean gate weight when routed */
} RsLoadChart;

/* Layer x expert heatmap of one load statistic. @model_name (may be NULL)
 * goes in the title. */
void rs_analysis_plot_load (RsPlot *plot, const RsLoadResult *r, RsLoadChart stat,
                            const char *model_name, RsColormap colormap, gboolean log_scale);

/* Lines against the layer: mean normalised router entropy, mean top-1
 * probability and mean probability of the selected experts. */
void rs_analysis_plot_entropy (RsPlot *plot, const RsEntropyResult *r);

/* Mean normalised JSD to the reference language against the layer, one
 * line per language. */
void rs_analysis_plot_align (RsPlot *plot, const RsAlignResult *r, RsImportanceMode mode);
/* Language x language heatmap of the mean normalised JSD at @layer. */
void rs_analysis_plot_align_matrix (RsPlot *plot, const RsAlignResult *r, RsImportanceMode mode,
                                    int layer);

/* Layer x expert heatmap of output_max (log colour), super experts
 * outlined. */
void rs_analysis_plot_super (RsPlot *plot, const RsSuperResult *r, const char *model_name);

/* SRP (@srp) or SCH against the layer, one line per segment length. */
void rs_analysis_plot_lrc (RsPlot *plot, const RsLrcResult *r, gboolean srp);

/* Expert x expert co-activation heatmap of @layer. */
void rs_analysis_plot_coact (RsPlot *plot, const RsSpecialResult *r, int layer);

G_END_DECLS

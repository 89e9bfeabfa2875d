package training

import (
	"sort"

	"switchyard/classifier"
)

// ValidationMetrics computes per-model validation metrics of m on examples: AUC
// (observed quality >= 0.5 counts as a positive), Brier score (mean squared
// error of the predicted quality), the number of observations and the mean
// observed quality. Observations are weighted by their example weight.
func ValidationMetrics(m *classifier.Model, ex []Example) map[string]classifier.Metrics {
	models := m.Models()
	preds := make([][]scored, len(models))
	var a classifier.Activations
	for i := range ex {
		m.Forward(&ex[i].Vec, &a)
		for j, p := range a.Out {
			if w := ex[i].Weights[j]; w > 0 {
				preds[j] = append(preds[j], scored{p: float64(p), y: float64(ex[i].Labels[j]), w: float64(w)})
			}
		}
	}
	out := make(map[string]classifier.Metrics, len(models))
	for j, name := range models {
		out[name] = metricsOf(preds[j])
	}
	return out
}

type scored struct{ p, y, w float64 }

func metricsOf(s []scored) classifier.Metrics {
	var met classifier.Metrics
	met.N = len(s)
	var w, brier, mean float64
	for _, x := range s {
		w += x.w
		brier += x.w * (x.p - x.y) * (x.p - x.y)
		mean += x.w * x.y
	}
	if w > 0 {
		met.Brier = brier / w
		met.Mean = mean / w
	}
	met.AUC = auc(s)
	return met
}

// auc is the weighted area under the ROC curve of scores p for labels
// y >= 0.5, with ties counted half. It is 0.5 when one class is absent.
func auc(s []scored) float64 {
	sorted := append([]scored(nil), s...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a].p < sorted[b].p })
	var pos, neg, area, negBelow float64
	for i := 0; i < len(sorted); {
		j := i
		var tp, tn float64
		for ; j < len(sorted) && sorted[j].p == sorted[i].p; j++ {
			if sorted[j].y >= 0.5 {
				tp += sorted[j].w
			} else {
				tn += sorted[j].w
			}
		}
		area += tp * (negBelow + tn/2)
		negBelow += tn
		pos += tp
		neg += tn
		i = j
	}
	if pos == 0 || neg == 0 {
		return 0.5
	}
	return area / (pos * neg)
}

// AUCOf is AUC on plain score and label slices (unit weights).
func AUCOf(scores, labels []float64) float64 {
	s := make([]scored, len(scores))
	for i := range scores {
		s[i] = scored{p: scores[i], y: labels[i], w: 1}
	}
	return auc(s)
}

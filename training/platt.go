package training

import (
	"math"

	"switchyard/classifier"
)

// plattShrink is the strength of the ridge that pulls each Platt scaling
// towards the identity (a = 1, b = 0): a penalty of plattShrink/2 times the
// average observation weight on (a − 1)² + b². On a small validation split
// the fit stays near the network's own output, which is trained on the same
// loss; on a large one the data decide. (Unshrunk, on alpaca-eval's 64
// graded validation labels a fold, the fit stretched predictions of about 0
// to 0.8 out of sample: expected calibration error 0.49, the router below
// random mixing.)
const plattShrink = 50

// plattOnValidation fits Platt scaling per model on the validation examples,
// sigmoid(a·z + b) over the model's logit z, and folds a and b into the
// output layer so the exported graph is unchanged. A model with too few
// validation observations, or a fit that does not lower the validation loss,
// is left as it is.
func plattOnValidation(m *classifier.Model, val []Example) {
	nout := len(m.Meta.Models)
	per := make([][]plattObs, nout)
	var a classifier.Activations
	for i := range val {
		m.Forward(&val[i].Vec, &a)
		for j := 0; j < nout; j++ {
			if w := val[i].Weights[j]; w > 0 {
				per[j] = append(per[j], plattObs{float64(a.Logits[j]), float64(val[i].Labels[j]), float64(w)})
			}
		}
	}
	for j, o := range per {
		plattScale(m, j, o)
	}
}

// plattOnOutOfFold is plattOnValidation on the out-of-fold predictions that chose the
// blend b: Platt scaling per model of the blended logits, folded into m
// (whose weights already carry the blend).
func plattOnOutOfFold(m *classifier.Model, oof []parts, b *Blend) {
	for j := range m.Meta.Models {
		o := make([]plattObs, len(oof))
		for i, p := range oof {
			z := float64(p.prior[j]) + b.Network*float64(p.network[j]) + b.Linear*float64(p.linear[j])
			o[i] = plattObs{z, float64(p.labels[j]), float64(p.weights[j])}
		}
		plattScale(m, j, o)
	}
}

// plattScale fits Platt scaling of model j on its observations and folds
// it into m, unless there are fewer than 50 or the fit does not lower
// their loss.
func plattScale(m *classifier.Model, j int, o []plattObs) {
	if len(o) < 50 {
		return
	}
	sa, sb := fitPlatt(o, plattShrink)
	if math.IsNaN(sa) || math.IsNaN(sb) || sa <= 0 || plattLoss(o, sa, sb) >= plattLoss(o, 1, 0) {
		return
	}
	scaleLogit(m, j, sa, sb)
}

// scaleLogit replaces model j's logit z by a·z + b in m's weights: every
// term that adds to it (prior, network, wide and sparse paths, bias) is
// scaled by a, and b joins the bias.
func scaleLogit(m *classifier.Model, j int, a, b float64) {
	nout := len(m.Meta.Models)
	fa := float32(a)
	for _, w := range [][]float32{m.W2, m.Ws, m.Prior, m.Sparse} {
		for k := j; k < len(w); k += nout {
			w[k] *= fa
		}
	}
	m.B2[j] = m.B2[j]*fa + float32(b)
}

// plattObs is one validation observation of a model: its logit, label and
// weight.
type plattObs struct{ z, y, w float64 }

// fitPlatt fits sigmoid(a·z + b) to the observations by Newton's method,
// with a ridge of shrink (in average observation weights) pulling (a, b)
// towards the identity (1, 0).
func fitPlatt(o []plattObs, shrink float64) (sa, sb float64) {
	var wsum float64
	for _, x := range o {
		wsum += x.w
	}
	lam := shrink * wsum / float64(len(o))
	sa, sb = 1.0, 0.0
	for it := 0; it < 50; it++ {
		var ga, gb, haa, hab, hbb float64
		for _, x := range o {
			p := 1 / (1 + math.Exp(-(sa*x.z + sb)))
			r := x.w * (p - x.y)
			h := x.w * p * (1 - p)
			ga += r * x.z
			gb += r
			haa += h * x.z * x.z
			hab += h * x.z
			hbb += h
		}
		ga += lam * (sa - 1)
		gb += lam * sb
		haa, hbb = haa+lam+1e-6, hbb+lam+1e-6
		det := haa*hbb - hab*hab
		if det <= 0 {
			break
		}
		da, db := (hbb*ga-hab*gb)/det, (haa*gb-hab*ga)/det
		sa, sb = sa-da, sb-db
		if math.Abs(da)+math.Abs(db) < 1e-9 {
			break
		}
	}
	return sa, sb
}

// plattLoss is the weighted cross-entropy of sigmoid(a·z + b).
func plattLoss(o []plattObs, sa, sb float64) float64 {
	var l float64
	for _, x := range o {
		p := 1 / (1 + math.Exp(-(sa*x.z + sb)))
		p = math.Min(math.Max(p, 1e-7), 1-1e-7)
		l -= x.w * (x.y*math.Log(p) + (1-x.y)*math.Log(1-p))
	}
	return l
}

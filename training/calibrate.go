package training

import (
	"math"

	"switchyard/classifier"
)

// calibrate fits Platt scaling per model on the validation examples,
// sigmoid(a·z + b) over the model's logit z, and folds a and b into the
// output layer so the exported graph is unchanged. A model with too few
// validation observations, or a fit that does not lower the validation loss,
// is left as it is.
func calibrate(m *classifier.Model, val []Example) {
	nout := len(m.Meta.Models)
	type obs struct{ z, y, w float64 }
	per := make([][]obs, nout)
	var a classifier.Activations
	for i := range val {
		m.Forward(&val[i].Vec, &a)
		for j := 0; j < nout; j++ {
			if w := val[i].Weights[j]; w > 0 {
				per[j] = append(per[j], obs{float64(a.Logits[j]), float64(val[i].Labels[j]), float64(w)})
			}
		}
	}
	loss := func(o []obs, sa, sb float64) float64 {
		var l float64
		for _, x := range o {
			p := 1 / (1 + math.Exp(-(sa*x.z + sb)))
			p = math.Min(math.Max(p, 1e-7), 1-1e-7)
			l -= x.w * (x.y*math.Log(p) + (1-x.y)*math.Log(1-p))
		}
		return l
	}
	hidden := len(m.B1)
	in := classifier.InputDim(m.Meta.EmbeddingDim)
	for j, o := range per {
		if len(o) < 50 {
			continue
		}
		sa, sb := 1.0, 0.0
		for it := 0; it < 50; it++ { // Newton's method on (a, b), with a small ridge
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
			haa, hbb = haa+1e-6, hbb+1e-6
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
		if math.IsNaN(sa) || math.IsNaN(sb) || sa <= 0 || loss(o, sa, sb) >= loss(o, 1, 0) {
			continue
		}
		fa := float32(sa)
		for k := 0; k < hidden; k++ {
			m.W2[k*nout+j] *= fa
		}
		for k := 0; k < in; k++ {
			m.Ws[k*nout+j] *= fa
		}
		m.B2[j] = m.B2[j]*fa + float32(sb)
	}
}

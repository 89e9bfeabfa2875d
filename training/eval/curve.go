package eval

import "math"

// ECE is the expected calibration error of predictions against outcomes
// over equal-width bins, and the bins for a reliability plot.
func ECE(pred, truth []float64, bins int) (float64, []Bin) {
	bs := make([]Bin, bins)
	for i, p := range pred {
		k := min(int(p*float64(bins)), bins-1)
		k = max(k, 0)
		bs[k].N++
		bs[k].MeanPredicted += p
		bs[k].MeanObserved += truth[i]
	}
	var ece float64
	for k := range bs {
		bs[k].Lo, bs[k].Hi = float64(k)/float64(bins), float64(k+1)/float64(bins)
		if bs[k].N > 0 {
			bs[k].MeanPredicted /= float64(bs[k].N)
			bs[k].MeanObserved /= float64(bs[k].N)
			ece += float64(bs[k].N) / float64(len(pred)) * math.Abs(bs[k].MeanPredicted-bs[k].MeanObserved)
		}
	}
	return ece, bs
}

// Bin is one bin of a reliability diagram.
type Bin struct {
	Lo, Hi        float64
	N             int
	MeanPredicted float64
	MeanObserved  float64
}

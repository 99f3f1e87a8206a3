package pool

// maxRotation bounds the length of a group's rotation: weights are scaled down
// to fit, so a group of many heavily weighted targets stays cheap to hold.
const maxRotation = 4096

// WeightedTarget is a serving target and its weight, the input of Interleave.
type WeightedTarget struct {
	T      *Target
	Weight int
}

// Interleave turns weights into a rotation in which every target appears as
// often as its weight, spread out evenly (nginx's smooth weighted round robin),
// so round robin over the rotation honours the weights without bursts.
func Interleave(targets []WeightedTarget) []*Target {
	total := 0
	for _, w := range targets {
		total += w.Weight
	}
	if total > maxRotation {
		for i := range targets {
			targets[i].Weight = max(targets[i].Weight*maxRotation/total, 1)
		}
		total = 0
		for _, w := range targets {
			total += w.Weight
		}
	}
	g := 0
	for _, w := range targets {
		g = gcd(g, w.Weight)
	}
	if g > 1 {
		total = 0
		for i := range targets {
			targets[i].Weight /= g
			total += targets[i].Weight
		}
	}
	rotation := make([]*Target, 0, total)
	current := make([]int, len(targets))
	for range total {
		best := 0
		for i, w := range targets {
			current[i] += w.Weight
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		rotation = append(rotation, targets[best].T)
	}
	return rotation
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

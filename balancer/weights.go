package balancer

// maxRotation bounds the length of a group's rotation: weights are scaled down
// to fit, so a group of many heavily weighted targets stays cheap to hold.
const maxRotation = 4096

type weightedTarget struct {
	t      *targetState
	weight int
}

// interleave turns weights into a rotation in which every target appears as
// often as its weight, spread out evenly (nginx's smooth weighted round robin),
// so round robin over the rotation honours the weights without bursts.
func interleave(targets []weightedTarget) []*targetState {
	total := 0
	for _, w := range targets {
		total += w.weight
	}
	if total > maxRotation {
		for i := range targets {
			targets[i].weight = max(targets[i].weight*maxRotation/total, 1)
		}
		total = 0
		for _, w := range targets {
			total += w.weight
		}
	}
	g := 0
	for _, w := range targets {
		g = gcd(g, w.weight)
	}
	if g > 1 {
		total = 0
		for i := range targets {
			targets[i].weight /= g
			total += targets[i].weight
		}
	}
	rotation := make([]*targetState, 0, total)
	current := make([]int, len(targets))
	for range total {
		best := 0
		for i, w := range targets {
			current[i] += w.weight
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		rotation = append(rotation, targets[best].t)
	}
	return rotation
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Package experiments is where routing policies are compared: off-policy
// estimates of a policy's value from logged exploration data, A/B tests and
// staged rollouts. It sits above the routing policy and the datasets and
// below cmd.
package experiments

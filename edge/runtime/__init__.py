"""The runtime `edge.load_policy` needs: the policy package, graph backends, policy runners, normalisation,
observation checks and Diffusion's schedulers. Nothing here touches a robot."""

"""GANs on 2-D mixtures, digits and user data: data, networks, losses, metrics and the trainer."""

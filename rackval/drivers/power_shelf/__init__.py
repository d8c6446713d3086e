"""Power shelf drivers: rectifiers feeding a DC busbar, with battery backup units."""

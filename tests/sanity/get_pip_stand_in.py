"""Stand-in for the pip bootstrap ansible-test downloads (its download host is not reachable here).

ansible-test runs this file with pip's own arguments; pip comes from ensurepip instead. The CA bundle
is passed explicitly because ansible-test hides the machine's pip configuration.
"""

import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
ca_bundle = "/etc/ssl/certs/ca-certificates.crt"
cert = ["--cert", ca_bundle] if os.path.exists(ca_bundle) else []
# --no-setuptools and --no-wheel are get-pip's own options, not pip's.
arguments = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *cert, *arguments]))

# A policy as small as precheck accepts, for the tests of the compile cache: what the cache keeps does not
# depend on the policy's size, and the default policy takes seconds to compile under the race detector.
package precheck

decision := {"allowed": true, "violations": [], "warnings": []} if input.cluster.version == "8.1.3.310"

decision := {"allowed": false, "violations": [{"code": "TINY-001", "field": "cluster.version", "severity": "deny", "message": "not 8.1.3.310"}], "warnings": []} if input.cluster.version != "8.1.3.310"

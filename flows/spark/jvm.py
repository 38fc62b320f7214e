"""The Spark JVMs' own options: a module without PySpark, so the Kubernetes conf can name them."""

# The JIT compiles generated methods of any size. By default HotSpot never compiles a method over 8,000
# bytes of bytecode (`DontCompileHugeMethods`): Spark's generated code for the PNAD typing (hundreds of
# expressions) has such methods, and they ran interpreted, the step's hottest loop at a fraction of its
# compiled speed. Driver and executors alike (in local mode the driver runs the tasks).
# The throughput collector: a step is a batch job, and G1 (the JVM's choice with two cores or more) ran its
# concurrent threads beside the tasks and the JIT on the two cores here. Side by side on the
# 400,000-document lake the PNAD step's first run took 19.1–21.7 s with it and 24.9–26.1 s with G1. (A
# one-core executor pod got the serial collector before; Parallel there is not measured.)
JVM_OPTIONS = "-XX:-DontCompileHugeMethods -XX:+UseParallelGC"

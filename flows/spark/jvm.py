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

# The local JVM only (Python driver, Spark JVM and the embedded MongoDB share the machine): a young
# generation of a fixed 128 MB. The throughput collector otherwise grows it towards a third of the heap and
# keeps what it grew, and in a step nearly everything the tasks allocate dies young, so the memory bought
# nothing. Side by side, the three Spark steps in one JVM (ibge, pnadc, consumer; four rounds, in turn):
# at 400,000 documents the JVM peaked at 1,052-1,110 MB instead of 1,406-1,517 MB, at 2,000,000 at
# 1,835-1,929 MB instead of 2,405-2,455 MB, in the same time within the rounds' spread (400,000: 34.6-42.3 s
# against 33.9-40.0 s; 2,000,000: 60.3-60.7 s against 53.9-65.9 s). Long-lived data (the cached typed
# PNAD frame) goes to the old generation, sized by `spark_driver_memory` as before. Pods are sized by
# their requests, not by what the JVM grows to: their options are unchanged.
LOCAL_JVM_OPTIONS = "-Xmn128m"

"""A Java program (OpenJDK, headless) with state in its heap and threads:
after the restore its threads go on from where they were and it finishes
with the right result."""

import pytest

from apps_harness import require_packages, run, which

# Two worker threads fill a shared map and a running checksum; the main thread
# says READY once half the work is done, waits for the file `go`, joins them
# and checks every entry.
PROGRAM = r'''
import java.nio.file.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;

public class App {
    static final int N = 200000;
    static final ConcurrentHashMap<Integer, Long> map = new ConcurrentHashMap<>();
    static final AtomicLong sum = new AtomicLong();
    static final CountDownLatch half = new CountDownLatch(2);

    static void work(int start) {
        for (int i = start; i < N; i += 2) {
            long v = (long) i * i % 1000003;
            map.put(i, v);
            sum.addAndGet(v);
            if (i == start + N / 2) {
                half.countDown();
                while (!Files.exists(Paths.get("go"))) {
                    try { Thread.sleep(20); } catch (InterruptedException e) { return; }
                }
            }
        }
    }

    public static void main(String[] args) throws Exception {
        Thread a = new Thread(() -> work(0)), b = new Thread(() -> work(1));
        a.start(); b.start();
        half.await();
        System.out.println("READY");
        System.out.flush();
        a.join(); b.join();
        long want = 0;
        for (int i = 0; i < N; i++) want += (long) i * i % 1000003;
        boolean ok = map.size() == N && sum.get() == want;
        for (int i = 0; ok && i < N; i++) ok = map.get(i) == (long) i * i % 1000003;
        System.out.println(ok ? "PASS" : "FAIL: " + map.size() + " entries, sum " + sum.get() + " want " + want);
        System.exit(ok ? 0 : 1);
    }
}
'''

JAVA_OPTS = ["-Xmx64m", "-Xss512k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]


@pytest.mark.parametrize("leave_running", [False, True], ids=["dump", "dump-R"])
def test_java_threads_and_heap(app, leave_running):
    require_packages("openjdk-17-jdk-headless")
    a = app("java")
    (a.dir / "App.java").write_text(PROGRAM)
    run([which("javac"), "-d", a.dir, a.dir / "App.java"], cwd=a.dir)
    a.start([which("java"), *JAVA_OPTS, "-cp", a.dir, "App"], env={"PATH": "/usr/bin:/bin", "HOME": str(a.dir)})
    a.wait_line("READY")
    a.dump(leave_running=leave_running)
    if not leave_running:
        a.restore()
    (a.dir / "go").touch()
    assert a.wait_exit() == 0, a.log()
    assert a.log().splitlines()[-1] == "PASS", a.log()

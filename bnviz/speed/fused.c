/* bnviz's fused CPU kernels: BatchNorm (batch statistics) -> sigmoid -> 2x2 mean pooling, the
 * block d2l's LeNet-BN repeats after each convolution, forward and backward in one pass over
 * each channel. PyTorch runs these as five or six separate passes over (N, C, H, W) tensors
 * that do not fit in cache; here each channel (N*H*W floats, 590 KB for conv1's output at
 * batch 256) is read from memory once and revisited in the core's L2 cache.
 *
 * The maths is nn.BatchNorm2d's in training mode (biased variance to normalise, unbiased
 * variance into running_var, running = (1 - momentum) * running + momentum * batch), then
 * torch.sigmoid, then nn.AvgPool2d(2, 2). bnviz/fused.py compiles this file with the
 * machine's C compiler, checks it against PyTorch at load time and falls back to PyTorch's
 * ops when anything is missing. Plain C99 + OpenMP, no PyTorch headers: it compiles in a
 * fraction of a second. Layout: contiguous NCHW float32, H and W even.
 */
#include <math.h>

/* glibc's libmvec has vector versions of expf; declared here so that the loops below
 * vectorise without -ffast-math (which would also let the compiler assume no NaN). */
#pragma omp declare simd notinbranch
float expf(float);

int bsp_abi_version(void) { return 1; }

void bsp_forward(const float *z, float *s, float *out, const float *gamma, const float *beta,
                 float *run_mean, float *run_var, float *save_mean, float *save_invstd,
                 long N, long C, long H, long W, double eps, double momentum, int nthreads)
{
    const long HW = H * W, H2 = H / 2, W2 = W / 2, M = N * HW;
    #pragma omp parallel for num_threads(nthreads) schedule(static, 1)
    for (long c = 0; c < C; c++) {
        /* two-pass mean and variance: the second pass reads the channel from cache */
        double sum = 0.0;
        for (long n = 0; n < N; n++) {
            const float *p = z + (n * C + c) * HW;
            float acc = 0.0f;
            #pragma omp simd reduction(+:acc)
            for (long i = 0; i < HW; i++) acc += p[i];
            sum += acc;
        }
        const double mean = sum / (double)M;
        const float mf = (float)mean;
        double sq = 0.0;
        for (long n = 0; n < N; n++) {
            const float *p = z + (n * C + c) * HW;
            float acc = 0.0f;
            #pragma omp simd reduction(+:acc)
            for (long i = 0; i < HW; i++) { const float d = p[i] - mf; acc += d * d; }
            sq += acc;
        }
        const double var = sq / (double)M;
        const float invstd = (float)(1.0 / sqrt(var + eps));
        save_mean[c] = mf;
        save_invstd[c] = invstd;
        if (run_mean) {
            run_mean[c] = (float)((1.0 - momentum) * run_mean[c] + momentum * mean);
            run_var[c] = (float)((1.0 - momentum) * run_var[c]
                                 + momentum * var * (double)M / (double)(M > 1 ? M - 1 : 1));
        }
        const float a = gamma[c] * invstd, b = beta[c] - mf * a;
        for (long n = 0; n < N; n++) {
            const float *p = z + (n * C + c) * HW;
            float *q = s + (n * C + c) * HW;
            float *o = out + (n * C + c) * H2 * W2;
            #pragma omp simd
            for (long i = 0; i < HW; i++) q[i] = 1.0f / (1.0f + expf(-(a * p[i] + b)));
            for (long i = 0; i < H2; i++) {
                const float *r0 = q + 2 * i * W, *r1 = r0 + W;
                #pragma omp simd
                for (long j = 0; j < W2; j++)
                    o[i * W2 + j] = 0.25f * ((r0[2 * j] + r0[2 * j + 1])
                                             + (r1[2 * j] + r1[2 * j + 1]));
            }
        }
    }
}

/* g: gradient of the pooled output (N, C, H/2, W/2); s: the sigmoid output saved by the
 * forward; z: the BatchNorm input. Writes gz (N, C, H, W), dgamma and dbeta (C). */
void bsp_backward(const float *g, const float *s, const float *z, const float *gamma,
                  const float *save_mean, const float *save_invstd, float *gz,
                  float *dgamma, float *dbeta, long N, long C, long H, long W, int nthreads)
{
    const long HW = H * W, H2 = H / 2, W2 = W / 2, M = N * HW;
    #pragma omp parallel for num_threads(nthreads) schedule(static, 1)
    for (long c = 0; c < C; c++) {
        const float mf = save_mean[c], is = save_invstd[c];
        double sg = 0.0, sgx = 0.0;
        for (long n = 0; n < N; n++) {
            const float *p = z + (n * C + c) * HW, *q = s + (n * C + c) * HW;
            const float *gp = g + (n * C + c) * H2 * W2;
            float *t = gz + (n * C + c) * HW; /* gy, the gradient at BN's output, first */
            for (long i = 0; i < H2; i++) {
                const float *gr = gp + i * W2;
                for (long r = 2 * i; r < 2 * i + 2; r++) {
                    const float *qr = q + r * W;
                    float *tr = t + r * W;
                    #pragma omp simd
                    for (long j = 0; j < W2; j++) {
                        const float gg = 0.25f * gr[j];
                        const float s0 = qr[2 * j], s1 = qr[2 * j + 1];
                        tr[2 * j] = gg * s0 * (1.0f - s0);
                        tr[2 * j + 1] = gg * s1 * (1.0f - s1);
                    }
                }
            }
            float a1 = 0.0f, a2 = 0.0f;
            #pragma omp simd reduction(+:a1, a2)
            for (long i = 0; i < HW; i++) { a1 += t[i]; a2 += t[i] * (p[i] - mf); }
            sg += a1;
            sgx += a2;
        }
        sgx *= is; /* sum of gy * x_hat */
        dbeta[c] = (float)sg;
        dgamma[c] = (float)sgx;
        const float k = gamma[c] * is, mg = (float)(sg / (double)M),
                    mgx = (float)(sgx / (double)M) * is;
        for (long n = 0; n < N; n++) {
            const float *p = z + (n * C + c) * HW;
            float *t = gz + (n * C + c) * HW;
            #pragma omp simd
            for (long i = 0; i < HW; i++) t[i] = k * (t[i] - mg - (p[i] - mf) * mgx);
        }
    }
}

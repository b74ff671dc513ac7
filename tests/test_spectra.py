"""ripkit.spectra against plain NumPy SVD, known spectra, and a real PEFT LoRA checkpoint."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_allclose

from ripkit import spectra


def _factors(m, n, r, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, r)), rng.standard_normal((r, n))


def _np_summary(w, energy=0.95, threshold=1e-4):
    """Independent reference: every analyzer written out from numpy.linalg.svd."""
    s = np.linalg.svd(w, compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    tol = s[0] * max(w.shape) * np.finfo(float).eps
    kept = s[s > tol]
    cum = np.cumsum(s ** 2) / np.sum(s ** 2)
    return {
        "eber": np.exp(-np.sum(p * np.log(p))),
        "energy_rank": int(np.argmax(cum >= energy - 1e-12) + 1),
        "stable_rank": np.sum(s ** 2) / s[0] ** 2,
        "numerical_rank": np.linalg.matrix_rank(w),
        "condition_number": kept[0] / kept[-1],
        "frobenius_norm": np.linalg.norm(w, "fro"),
        "fraction_below": np.mean(np.abs(w) < threshold),
    }


@settings(max_examples=15, deadline=None)
@given(m=st.integers(3, 40), n=st.integers(3, 40), r=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_factorized_spectrum_equals_dense_svd(m, n, r, seed):
    a, b = _factors(m, n, r, seed)
    dense = np.linalg.svd(a @ b, compute_uv=False)
    fact = spectra.singular_values((a, b), full=True)
    assert fact.shape == dense.shape
    assert_allclose(fact, dense, rtol=0, atol=1e-10 * dense[0])


def test_cosa_triple_spectrum_equals_dense():
    rng = np.random.default_rng(1)
    l, y, r = rng.standard_normal((30, 6)), rng.standard_normal((6, 4)), rng.standard_normal((4, 25))
    dense = np.linalg.svd(l @ y @ r, compute_uv=False)
    assert_allclose(spectra.singular_values((l, y, r)), dense[:4], rtol=1e-10)


def test_thin_svd_from_factors_reconstructs():
    a, b = _factors(20, 15, 3, 2)
    u, s, vt = spectra.thin_svd((a, b))
    assert_allclose((u * s) @ vt, a @ b, atol=1e-10)
    assert_allclose(u.T @ u, np.eye(3), atol=1e-12)
    assert_allclose(vt @ vt.T, np.eye(3), atol=1e-12)


def test_eber_flat_spectrum_of_rank_r_is_r():
    for r in (1, 4, 16):
        assert_allclose(spectra.eber(np.r_[np.ones(r), np.zeros(5)]), r, rtol=1e-12)
    # A matrix with a flat spectrum of rank 3: three orthonormal columns.
    q = np.linalg.qr(np.random.default_rng(0).standard_normal((10, 3)))[0]
    assert_allclose(spectra.eber(q @ q.T), 3.0, rtol=1e-10)


def test_eber_known_two_value_spectrum():
    # p = (3/4, 1/4): H = -(3/4 ln 3/4 + 1/4 ln 1/4) written out by hand.
    h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert_allclose(spectra.eber([3.0, 1.0]), np.exp(h), rtol=1e-14)
    assert 1.0 < spectra.eber([3.0, 1.0]) < 2.0


def test_normalized_spectrum_sums_to_one_and_zero_matrix_conventions():
    assert_allclose(spectra.normalized_spectrum([2.0, 1.0, 1.0]), [0.5, 0.25, 0.25])
    z = np.zeros((4, 3))
    assert spectra.eber(z) == 0.0 and spectra.energy_rank(z) == 0 and spectra.stable_rank(z) == 0.0
    assert spectra.numerical_rank(z) == 0 and np.isnan(spectra.condition_number(z))


def test_energy_rank_and_stable_rank_known_values():
    assert spectra.energy_rank([1.0, 1.0, 1.0, 1.0], energy=0.5) == 2
    assert spectra.energy_rank([1.0, 1.0, 1.0, 1.0], energy=0.51) == 3
    assert spectra.energy_rank([10.0, 1.0, 0.1]) == 1  # 100/101.01 = 0.99 >= 0.95
    assert_allclose(spectra.stable_rank([2.0, 1.0]), 5.0 / 4.0)


def test_numerical_rank_explicit_tolerance():
    s = [1.0, 1e-3, 1e-9]
    assert spectra.numerical_rank(s, tol=1e-6) == 2
    assert spectra.numerical_rank(s, rtol=1e-12) == 3
    assert spectra.numerical_rank(s, tol=0.5) == 1


def test_condition_number_zero_handling():
    a, b = _factors(12, 10, 3, 5)
    s = np.linalg.svd(a @ b, compute_uv=False)
    assert_allclose(spectra.condition_number((a, b)), s[0] / s[2], rtol=1e-10)
    assert spectra.condition_number((a, b), zeros="include") == np.inf
    full = np.random.default_rng(3).standard_normal((6, 6))
    assert_allclose(spectra.condition_number(full, zeros="include"), np.linalg.cond(full), rtol=1e-10)


def test_sparsity_from_factors_matches_dense():
    a, b = _factors(70, 50, 2, 7)
    a *= 1e-3  # many entries near zero
    w = a @ b
    st_f, st_d = spectra.sparsity((a, b), threshold=1e-4), spectra.sparsity(w, threshold=1e-4)
    assert st_f.fraction_below == np.mean(np.abs(w) < 1e-4)
    assert st_f.fraction_below == st_d.fraction_below and 0 < st_f.fraction_below < 1
    assert_allclose(st_f.max_abs, np.abs(w).max(), rtol=1e-12)
    assert_allclose(st_f.frobenius_norm, np.linalg.norm(w), rtol=1e-12)
    assert st_f.to_dict()["n_entries"] == 3500


def test_summarize_factorized_equals_numpy_reference():
    a, b = _factors(40, 30, 5, 11)
    ref = _np_summary(a @ b)
    got = spectra.summarize((a, b)).to_dict()
    for key, val in ref.items():
        assert_allclose(got[key], val, rtol=1e-10, err_msg=key)


def test_prop2_four_orthogonal_blocks_of_rank_r_have_rank_4r():
    # CPS-LoRA Proposition 2: blocks A_i B_i with mutually orthogonal A_i and B_i.
    n, r = 32, 3
    rng = np.random.default_rng(0)
    qa = np.linalg.qr(rng.standard_normal((n // 2, 4 * r)))[0]
    qb = np.linalg.qr(rng.standard_normal((n // 2, 4 * r)))[0]
    a = [qa[:, i * r:(i + 1) * r] @ rng.standard_normal((r, r)) for i in range(4)]
    b = [(qb[:, i * r:(i + 1) * r] @ rng.standard_normal((r, r))).T for i in range(4)]
    w = np.block([[a[0] @ b[0], a[2] @ b[2]], [a[1] @ b[1], a[3] @ b[3]]])
    assert np.linalg.matrix_rank(w) == 4 * r
    assert spectra.numerical_rank(w) == 4 * r
    # Prop 1 contrast: one global pair with the same parameter count (2r) has rank 2r.
    g = rng.standard_normal((n, 2 * r)) @ rng.standard_normal((2 * r, n))
    assert spectra.numerical_rank(g) == 2 * r
    assert spectra.eber(w) > spectra.eber(g)


@pytest.mark.parametrize("bad, exc, match", [
    (np.zeros(0), ValueError, "singular values"),
    (np.array([1.0, -1.0]), ValueError, "singular values"),
    ((np.ones((3, 2)), np.ones((3, 4))), ValueError, "do not chain"),
    ((np.ones((3, 2)), np.ones((2, 4)), np.ones((4, 1)), np.ones((1, 2))), ValueError, "2 or 3 factors"),
    (np.full((2, 2), np.nan), ValueError, "NaN"),
])
def test_bad_inputs_raise(bad, exc, match):
    with pytest.raises(exc, match=match):
        spectra.eber(bad)


def test_bad_options_raise():
    with pytest.raises(ValueError, match=r"energy=1.5 must be in"):
        spectra.energy_rank([1.0], energy=1.5)
    with pytest.raises(ValueError, match="zeros='none' must be one of"):
        spectra.condition_number([1.0], zeros="none")
    with pytest.raises(ValueError, match="tol=-1"):
        spectra.numerical_rank([1.0], tol=-1)
    with pytest.raises(ValueError, match="threshold=0"):
        spectra.sparsity(np.ones((2, 2)), threshold=0)


def test_peft_lora_checkpoint_factorized_analyzers_match_numpy(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.numpy import load_file

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(24, 40), torch.nn.ReLU(), torch.nn.Linear(40, 16))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["0", "2"]))
    with torch.no_grad():  # B = 0 at init; perturb so ΔW != 0
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.1)
    model.save_pretrained(tmp_path)
    tensors = load_file(str(tmp_path / "adapter_model.safetensors"))
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    scaling = cfg["lora_alpha"] / cfg["r"]
    prefixes = sorted({k.split(".lora_")[0] for k in tensors if ".lora_A." in k})
    assert len(prefixes) == 2
    for prefix in prefixes:
        a = tensors[f"{prefix}.lora_A.weight"].astype(np.float64)  # (r, in)
        b = tensors[f"{prefix}.lora_B.weight"].astype(np.float64)  # (out, r)
        factors = (scaling * b, a)  # ΔW = scaling·B·A, (out, in)
        dense = scaling * b @ a
        s_ref = np.linalg.svd(dense, compute_uv=False)
        assert_allclose(spectra.singular_values(factors), s_ref[:4], rtol=1e-8)
        ref = _np_summary(dense)
        got = spectra.summarize(factors).to_dict()
        for key, val in ref.items():
            assert_allclose(got[key], val, rtol=1e-8, err_msg=f"{prefix}: {key}")


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 80), k=st.integers(1, 80), seed=st.integers(0, 10**6), transposed=st.booleans())
def test_r_factor_is_bit_identical_to_numpy_qr(m, k, seed, transposed):
    x = np.random.default_rng(seed).standard_normal((k, m) if transposed else (m, k))
    x = x.T if transposed else x  # a transposed view, as _factor_svd passes Bᵀ
    keep = x.copy()
    np.testing.assert_array_equal(spectra._r_factor(x), np.linalg.qr(x, mode="r"))
    np.testing.assert_array_equal(x, keep)  # the input is not overwritten


def test_spectrum_scalars_equal_the_numpy_reference():
    a, b = _factors(60, 45, 5, 12)
    ref = _np_summary(a @ b)
    got = spectra.spectrum_scalars(spectra.singular_values((a, b)), (60, 45))
    for key in ("eber", "energy_rank", "stable_rank", "numerical_rank", "condition_number", "frobenius_norm"):
        assert_allclose(got[key], ref[key], rtol=1e-10, err_msg=key)
    assert_allclose(got["sigma_max"], np.linalg.norm(a @ b, 2), rtol=1e-12)


def test_sparsity_threads_do_not_change_the_result():
    a, b = _factors(300, 200, 3, 8)
    assert spectra.sparsity((a, b), threads=1) == spectra.sparsity((a, b), threads=3)
